"""The token routes: log in (throttled), refresh (rotating), log out; and their error responses.

- `POST /api/token/`: username + password -> an access and a refresh token, both carrying the
  user's token version (chat.identity.TOKEN_VERSION_CLAIM). Failed logins are throttled
  (chat.identity.login_throttle).
- `POST /api/token/refresh/`: a refresh token -> a new access token and a new refresh token; the
  one used is blacklisted (simplejwt's token_blacklist app), so it works once.
- `POST /api/token/logout/`: blacklists the given refresh token, or with `"everywhere": true`
  bumps the user's token version, which ends every session of the user, access tokens included.

simplejwt's own serializers are not used for refresh and logout: they look the user up with
`.get()` (a deleted user's token was a 500), know nothing of the token version, and let two
concurrent refreshes with one token both succeed. These are DRF views (sync, run in a worker
thread by Django); `exception_handler` gives their errors the API's shape.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError, transaction
from rest_framework import serializers
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.serializers import TokenObtainSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView, TokenRefreshView

from chat.errors import AuthError, LoginThrottled
from chat.identity import (
    TOKEN_VERSION_CLAIM,
    Caller,
    LoginThrottle,
    caller_for_token_user,
    client_address,
    token_claims,
)
from chat.models import TokenVersion

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "The database is unavailable right now; please retry shortly."


class VersionedRefreshToken(RefreshToken):
    """A refresh token (and, through `access_token`, access tokens) carrying a token version."""

    @classmethod
    def for_user_version(cls, user, version: int) -> VersionedRefreshToken:
        token = cls()
        token[jwt_settings.USER_ID_CLAIM] = str(getattr(user, jwt_settings.USER_ID_FIELD))
        token[TOKEN_VERSION_CLAIM] = version
        token.outstand()  # recorded as outstanding (with its claims), so it can be blacklisted
        return token


def _token_caller(token: RefreshToken) -> Caller:
    """The still-valid user of a verified refresh token, or a 401."""
    try:
        return caller_for_token_user(*token_claims(token))
    except AuthError as exc:
        raise InvalidToken(exc.detail) from None


def _version_of(username: str) -> int:
    row = (
        get_user_model()
        .objects.filter(**{get_user_model().USERNAME_FIELD: username})
        .values_list("token_version__version", flat=True)
        .first()
    )
    return row or 0


class LoginSerializer(TokenObtainSerializer):
    token_class = VersionedRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        username = attrs[self.username_field]
        throttle = LoginThrottle(username, client_address(self.context["request"]))
        try:
            throttle.check()
        except LoginThrottled as exc:
            raise Throttled(wait=exc.wait, detail=exc.detail) from None
        # Read before the password is checked: if the password changes in between, the tokens
        # carry the old version and are refused, instead of an old password earning new ones.
        version = _version_of(username)
        # authenticate() (chat.identity.backends) counts a failure and clears the count on success;
        # AuthenticationFailed if wrong, inactive, or throttled since the check above.
        super().validate(attrs)
        refresh = self.token_class.for_user_version(self.user, version)
        return {"refresh": str(refresh), "access": str(refresh.access_token)}


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = VersionedRefreshToken(attrs["refresh"])  # signature, expiry, type, blacklist
        _token_caller(refresh)
        access = refresh.access_token  # copies the user id and token version claims
        with transaction.atomic():  # the old token is used up only if the new one is recorded
            _, first_use = refresh.blacklist()
            if not first_use:  # a concurrent refresh with the same token got there first
                raise InvalidToken("The refresh token has already been used.")
            refresh.set_jti()
            refresh.set_exp()
            refresh.set_iat()
            refresh.outstand()
        return {"access": str(access), "refresh": str(refresh)}


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()
    everywhere = serializers.BooleanField(default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = VersionedRefreshToken(attrs["refresh"])
        caller = _token_caller(refresh)
        with transaction.atomic():
            refresh.blacklist()
            if attrs["everywhere"]:
                TokenVersion.objects.bump(caller.pk)
        return {"revoked": "all" if attrs["everywhere"] else "token"}


class LoginView(TokenObtainPairView):
    serializer_class = LoginSerializer
    www_authenticate_realm = "cirkelline"


class RefreshView(TokenRefreshView):
    serializer_class = RefreshSerializer
    www_authenticate_realm = "cirkelline"


class LogoutView(TokenBlacklistView):
    serializer_class = LogoutSerializer
    www_authenticate_realm = "cirkelline"


def _describe(errors: Any) -> str:
    if isinstance(errors, dict):
        return "; ".join(
            _describe(value) if field in ("non_field_errors", "detail") else f"{field}: {_describe(value)}"
            for field, value in errors.items()
        )
    if isinstance(errors, list):
        return " ".join(_describe(value) for value in errors)
    return str(errors)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: a database outage is a 503 with Retry-After (as for the async views),
    and validation errors get a `detail` sentence beside the per-field `errors`."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        request = context.get("request")
        logger.error("database unavailable during %s %s", getattr(request, "method", "?"),
                     getattr(request, "path", "?"), exc_info=exc)
        set_rollback()
        return Response({"detail": DATABASE_UNAVAILABLE}, status=503, headers={"Retry-After": "5"})
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        response.data = {"detail": _describe(response.data), "errors": response.data}
    return response
