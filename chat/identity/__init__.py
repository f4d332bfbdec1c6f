"""Who a request belongs to, for every transport: the caller behind an access token (callers) and
the failed-login throttle the token route and the login page share (login_throttle)."""

from .callers import TOKEN_VERSION_CLAIM, Caller, caller_for_token_user, caller_from_token, token_claims
from .login_throttle import LoginThrottle, client_address

__all__ = ["TOKEN_VERSION_CLAIM", "Caller", "LoginThrottle", "caller_for_token_user", "caller_from_token",
           "client_address", "token_claims"]
