"""Websocket routes, and the origin check in front of them (composed in cirkelline_site/asgi.py)."""

from __future__ import annotations

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from .consumer import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
]


class AllowedHostsOriginValidator(OriginValidator):
    """Channels' AllowedHostsOriginValidator, except that a handshake without an Origin header passes.

    The check exists against cross-site websocket hijacking: a page on another site opening a
    socket that rides the user's cookie. Browsers always send Origin, so that is still refused
    here; API clients (agno, scripts, the bench) send none, and whatever they authenticate with
    (a JWT, or a cookie they hold themselves) is theirs to use.
    """

    def __init__(self, application):
        super().__init__(application, settings.ALLOWED_HOSTS)

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)
