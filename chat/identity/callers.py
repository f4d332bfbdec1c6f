"""Who a token belongs to: `Caller`, and `caller_from_token`, the one check of an access token for
every transport (the HTTP API's Bearer header, the websocket's subprotocol or auth frame).

Signature, expiry and token type are verified by simplejwt (HS256 only, so `alg: none` and
foreign keys fail). A token is revocable: it carries its user's token version
(chat.models.TokenVersion), and every check reads the user's row (active flag and current
version, one primary-key query) so that a password change, a deactivation or a "log out
everywhere" in any process refuses it at once. Nothing about a user is cached between requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from chat.errors import AuthError
from chat.storage import prepared
from chat.storage.executor import run_db

# The claim holding the token version a token was minted under. Tokens without it (minted before
# versions existed, or by AccessToken.for_user in scripts) count as version 0.
TOKEN_VERSION_CLAIM = "token_version"


@dataclass(frozen=True)
class Caller:
    pk: int
    username: str
    is_staff: bool
    via: str  # "jwt" or "session"


def token_claims(token: Any) -> tuple[int, int]:
    """The user id and token version a verified simplejwt token names (AuthError 401 if malformed)."""
    try:
        pk = int(token[jwt_settings.USER_ID_CLAIM])
        version = token.get(TOKEN_VERSION_CLAIM, 0)
    except (KeyError, ValueError, TypeError):
        raise AuthError(401, "The token is invalid or has expired.") from None
    if type(version) is not int:
        raise AuthError(401, "The token is invalid or has expired.")
    return pk, version


def caller_for_token_user(pk: int, version: int) -> Caller:
    """The caller a verified token of user `pk`, minted under `version`, stands for, if the user
    still exists, is active and has not revoked that version. One query (a prepared statement); sync."""
    row = prepared.user_for_token(pk)
    if row is None or not row[2]:
        raise AuthError(401, "The token's user does not exist or is inactive.")
    if (row[3] or 0) != version:
        raise AuthError(401, "The token has been revoked (password change, deactivation or logout); log in again.")
    return Caller(pk=pk, username=row[0], is_staff=row[1], via="jwt")


async def caller_from_token(token: str) -> Caller:
    """The caller an access token stands for; AuthError(401) for a bad, expired or revoked token,
    or a user that no longer exists or is inactive. The database is read off the event loop."""
    if not isinstance(token, str) or not token.strip():
        raise AuthError(401, "The access token is invalid or has expired.")
    try:
        validated = AccessToken(token.strip())
    except TokenError:
        raise AuthError(401, "The access token is invalid or has expired.") from None
    pk, version = token_claims(validated)
    return await run_db(caller_for_token_user, pk, version)
