"""Websocket routes, and the Origin check in front of them (composed in cirkelline_site/asgi.py).

The check is against cross-site websocket hijacking: a page of another origin opening a socket
that rides the user's login cookie. An origin is a scheme, a host and a port, all three compared
(a default port written or not):

- the site's own origins may use the cookie: the handshake's own `Host` (one of
  `DJANGO_ALLOWED_HOSTS`) with the site's scheme (`https` with `CIRKELLINE_TLS` or on a secure
  socket, else `http`), and each of `DJANGO_CSRF_TRUSTED_ORIGINS` (the public origins behind a
  proxy that rewrites Host or the scheme; `https://*.example.com` names its subdomains), as
  Django's CSRF check accepts them for a cookie POST;
- `CIRKELLINE_CORS_ORIGINS` (browser API clients such as agent-ui) may open token sockets only:
  their handshake never reaches the cookie's session, so they authenticate with a JWT;
- a handshake without an Origin header passes as a token socket would: browsers always send one,
  API clients (agno, scripts, the bench) send none, and what they authenticate with is theirs;
- every other origin, `null` included, is refused at the handshake (403).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.urls import path

from .consumer import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
]

DEFAULT_PORTS = {"http": 80, "https": 443}
SITE, TOKEN_ONLY = "site", "token-only"


def _origin(text: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin (or a configured origin), None if it is not one."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def _matches(origin: tuple[str, str, int], allowed: str) -> bool:
    pattern = _origin(allowed.replace("://*.", "://wildcard.", 1))
    if pattern is None or pattern[0] != origin[0] or pattern[2] != origin[2]:
        return False
    if "://*." in allowed:  # Django's form for "any subdomain of"
        return origin[1].endswith("." + pattern[1].removeprefix("wildcard."))
    return origin[1] == pattern[1]


def _own_origin(scope: dict) -> tuple[str, str, int] | None:
    """The origin of the page that served this handshake's Host, if the site serves that Host."""
    host = next((value.decode("latin-1") for name, value in scope.get("headers") or () if name == b"host"), "")
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    secure = settings.CIRKELLINE_TLS or scope.get("scheme") in ("wss", "https")
    return _origin(f"{'https' if secure else 'http'}://{host}")


def origin_access(scope: dict) -> str | None:
    """SITE (may use the login cookie), TOKEN_ONLY (a token socket), or None (refused)."""
    values = [value for name, value in scope.get("headers") or () if name == b"origin"]
    if not values:
        return TOKEN_ONLY
    origin = _origin(values[0].decode("latin-1")) if len(values) == 1 else None
    if origin is None:
        return None
    if origin == _own_origin(scope) or any(_matches(origin, o) for o in settings.CSRF_TRUSTED_ORIGINS):
        return SITE
    if any(_matches(origin, o) for o in settings.CORS_ALLOWED_ORIGINS):
        return TOKEN_ONLY
    return None


class OriginCheck:
    """ASGI: a websocket handshake goes to `site_app` (the cookie's session and user) from the
    site's own origins, to `token_app` (no cookie read) from CORS origins or none, else is denied."""

    def __init__(self, site_app, token_app):
        self.site_app, self.token_app = site_app, token_app

    async def __call__(self, scope, receive, send):
        access = origin_access(scope)
        if access == SITE:
            return await self.site_app(scope, receive, send)
        if access == TOKEN_ONLY:
            return await self.token_app(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
