"""Who is calling the HTTP API: a Bearer access token, or the Django session cookie (+ CSRF for writes).

- `Authorization: Bearer <access token>`: checked by chat.identity.caller_from_token. A present
  but bad header is a 401; it never falls back to the cookie.
- A session cookie (the chat page's own API calls): unsafe methods must pass Django's CSRF check
  (403 otherwise), made here because the API views are csrf_exempt for token clients.

The identity comes only from these; a request body never chooses the user.
"""

from __future__ import annotations

from django.http import HttpRequest

from chat.errors import AuthError
from chat.identity import Caller, caller_from_token

from .django_overrides import CsrfCheck

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_csrf = CsrfCheck(lambda request: None)


async def authenticate(request: HttpRequest) -> Caller:
    """The caller of an API request (AuthError 401 without valid credentials, 403 failing CSRF)."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "The Authorization header must be 'Bearer <access token>'.")
        return await caller_from_token(token)

    user = await request.auser()
    if user is not None and user.is_authenticated:
        if request.method not in SAFE_METHODS:
            _csrf.process_request(request)
            reason = _csrf.process_view(request, None, (), {})
            if reason:
                raise AuthError(403, f"CSRF check failed: {reason}.")
        return Caller(pk=user.pk, username=user.get_username(), is_staff=user.is_staff, via="session")
    raise AuthError(401, "Authentication credentials were not provided.")
