"""Who is calling: a verified JWT (simplejwt access token) or a Django session cookie.

- `Authorization: Bearer <access token>`: signature, expiry and token type are verified by
  simplejwt (HS256 only, so `alg: none` and foreign keys fail). A present but bad header is a
  401; it never falls back to the cookie.
- A session cookie: unsafe methods must pass Django's CSRF check (403 otherwise).

The identity comes only from these; a request body never chooses the user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from .db import run_db

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How long a looked-up user (active flag, name) is trusted before it is read again.
USER_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Caller:
    pk: int
    username: str
    is_staff: bool
    via: str  # "jwt" or "session"


class AuthError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


_csrf = _CsrfCheck(lambda request: None)
_user_cache: dict[int, tuple[float, tuple[str, bool] | None]] = {}


def _load_user(pk: int) -> tuple[str, bool] | None:
    row = get_user_model().objects.filter(pk=pk, is_active=True).values_list("username", "is_staff").first()
    return (row[0], row[1]) if row else None


async def _active_user(pk: int) -> tuple[str, bool] | None:
    now = time.monotonic()
    cached = _user_cache.get(pk)
    if cached is not None and cached[0] > now:
        return cached[1]
    user = await run_db(_load_user, pk)
    _user_cache[pk] = (now + USER_CACHE_SECONDS, user)
    return user


def forget_user(pk: int) -> None:
    """Drop a cached user (after deactivation, in tests)."""
    _user_cache.pop(pk, None)


async def caller_from_token(token: str) -> Caller:
    """The caller a simplejwt access token names (signature, expiry, type, active user); AuthError(401) if not."""
    try:
        validated = AccessToken(token.strip())
        pk = int(validated[jwt_settings.USER_ID_CLAIM])
    except (TokenError, KeyError, ValueError, TypeError):
        raise AuthError(401, "The access token is invalid or has expired.") from None
    user = await _active_user(pk)
    if user is None:
        raise AuthError(401, "The access token's user does not exist or is inactive.")
    return Caller(pk=pk, username=user[0], is_staff=user[1], via="jwt")


async def authenticate(request) -> Caller:
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
