"""The login forms (the chat's page and the admin's) with the failed-login throttle's own message.

The throttle itself is enforced in authenticate() (chat.identity.backends), for every form; a
form reads the counters first only so a throttled login says so ("Too many failed logins for
this username; try again later.") instead of "Please enter a correct username and password".
"""

from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from chat.errors import LoginThrottled

from .login_throttle import LoginThrottle, client_address


class ThrottleMessage:
    """For an AuthenticationForm: a throttled username or address is refused with its reason."""

    def clean(self) -> dict:
        throttle = LoginThrottle(self.cleaned_data.get("username") or "", client_address(self.request))
        try:
            throttle.check()
        except LoginThrottled as exc:
            raise ValidationError(exc.detail, code="throttled") from None
        return super().clean()


class ThrottledLoginForm(ThrottleMessage, AuthenticationForm):
    """The chat's login page (chat.web)."""


class ThrottledAdminLoginForm(ThrottleMessage, AdminAuthenticationForm):
    """`/admin/login/` (cirkelline_site.urls sets it as the admin site's login form)."""
