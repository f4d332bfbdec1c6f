"""The site's one authentication backend: Django's ModelBackend behind the failed-login throttle.

Every login goes through `django.contrib.auth.authenticate()`: the chat's login page, the admin's
(`/admin/login/`), the token route (`POST /api/token/`, simplejwt) and anything added later. The
throttle (chat.identity.login_throttle) is therefore kept here, once: a throttled username or
address is refused before the password is tried (PermissionDenied makes authenticate() stop and
answer None), a failure is counted, a success clears its username's count. The forms and the
token route read the same counters beforehand only to say *why* (a 429, "Too many failed
logins"); a path that does not is refused all the same, as a wrong password.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from chat.errors import LoginThrottled

from .login_throttle import LoginThrottle, client_address


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None  # not a password login: nothing to guess, nothing to count
        throttle = LoginThrottle(str(username), client_address(request) if request is not None else None)
        try:
            throttle.check()
        except LoginThrottled:
            raise PermissionDenied from None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:  # a wrong password, an unknown username or an inactive account
            throttle.failed()
        else:
            throttle.succeeded()
        return user
