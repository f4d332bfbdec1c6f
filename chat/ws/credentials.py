"""Whether a socket's credentials still hold: checked again before every run, watch and cancel.

A socket authenticates once (the session cookie, or a JWT: chat.ws.consumer), but it may stay open
for hours: an expired or revoked token, or a login that ended (logout, expiry, a password change),
refuses its next run. Kept apart from the consumer so the check reads as one rule, not as part of
the socket's frame handling.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user
from django.contrib.sessions.backends.base import SessionBase
from django.utils.module_loading import import_string

from chat.errors import AuthError
from chat.identity import caller_from_token
from chat.storage.executor import run_db

# Seconds a socket without credentials may take to send its `auth` frame.
AUTH_TIMEOUT = 10.0


def session_user_pk(session_key: str) -> int | None:
    """The user a Django session still logs in (None after logout, expiry or a password change)."""
    store: SessionBase = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key)
    if SESSION_KEY not in store:
        return None
    user = get_user(SimpleNamespace(session=store))  # checks the session's auth hash, like a request
    return user.pk if user.is_authenticated else None


async def recheck(user_pk: int, *, token: str | None, session_key: str | None) -> None:
    """Raise AuthError unless the token has neither expired nor been revoked, or the login session
    still exists (and logs in `user_pk`, still active)."""
    if token is not None:
        await caller_from_token(token)
    elif session_key is not None:
        if await run_db(session_user_pk, session_key) != user_pk:
            raise AuthError(401, "Your login has ended: log in again to send messages.")
