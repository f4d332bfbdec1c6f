"""ASGI entry point (Daphne or any ASGI server): HTTP through Django, websockets through Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

# Build the Django app before importing anything that touches models: the app registry
# must be ready first.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.api.limits import BodyLimit  # noqa: E402
from chat.api.request_threads import RequestThreads  # noqa: E402
from chat.ws.routing import OriginCheck, websocket_urlpatterns  # noqa: E402

# Static files (CIRKELLINE_SERVE_STATIC) are served by a middleware, so that they get the same
# security headers as every other response: see cirkelline_site/staticfiles.py.
application = ProtocolTypeRouter({
    # A body over its route's limit is refused (413) before Django reads it (chat.api.limits); a
    # request's thread-sensitive work runs on a reused thread, not a new one (chat.api.request_threads).
    "http": BodyLimit(RequestThreads(django_asgi_app)),
    # Origin checked (scheme, host and port: chat.ws.routing): the site's own pages get the session
    # cookie's user; CORS origins and clients without an Origin authenticate with a token.
    "websocket": OriginCheck(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), URLRouter(websocket_urlpatterns)),
})


def _correct_daphne() -> None:
    """Three corrections to Daphne (Twisted, Autobahn), made before it serves a request. All fix
    bugs and all touch library internals: tests/site/test_library_drift.py pins what they rely on.

    - Twisted's table of reason phrases (twisted.web.http.RESPONSES, as of Twisted 26.10) has no
      429, so Daphne sent "HTTP/1.1 429 Unknown Status" with every rate-limit refusal: add the
      phrase RFC 6585 gives it.
    - Twisted parses each POST form or multipart body itself, into `request.args`, which Daphne
      never reads (it hands Django the raw body): every upload was parsed twice, and a multipart
      body Twisted could not parse (one without a boundary) got its bare "400 Bad Request", with
      no body and no headers, before Django could answer. Daphne's requests are told not to
      parse (`parsePOSTFormSubmission`, an argument of Twisted's Request); Django's parser is the
      one that answers.
    - Autobahn's `sendClose`, which Daphne's `serverClose` calls for an application's
      `websocket.close`, refuses every code but 1000 and 3000-4999 (its rule for what a client
      may send): the 1012 "service restart" a draining process closes its sockets with (chat.ws)
      raised inside Daphne and never left, and the clients saw the line dropped (1006) when the
      process stopped. Codes of RFC 6455's registry that a server sends (1001, 1008, 1009,
      1011-1014) go out through Autobahn's own frame sender, as its `sendClose` does after its
      check: 1009 "message too big" and 1008 "policy violation" are chat.ws.limits' closes.
    """
    from daphne import http_protocol, ws_protocol
    from twisted.web import http

    http.RESPONSES.setdefault(429, b"Too Many Requests")
    if not getattr(ws_protocol.WebSocketProtocol, "cirkelline_server_codes", False):
        server_close = ws_protocol.WebSocketProtocol.serverClose

        def serverClose(self, code=None):  # noqa: N802 - Daphne's name
            if code in (1001, 1008, 1009, 1011, 1012, 1013, 1014):
                self.sendCloseFrame(code=code, isReply=False)
            else:
                server_close(self, code)

        serverClose.__wrapped__ = server_close  # the drift test pins the original's source
        ws_protocol.WebSocketProtocol.serverClose = serverClose
        ws_protocol.WebSocketProtocol.cirkelline_server_codes = True
    if getattr(http_protocol.WebRequest, "cirkelline_no_form_parsing", False):
        return

    class WebRequest(http_protocol.WebRequest):
        cirkelline_no_form_parsing = True

        def __init__(self, *args, **kwargs):
            kwargs["parsePOSTFormSubmission"] = False
            super().__init__(*args, **kwargs)

    # daphne.http_protocol.HTTPFactory.buildProtocol hands this module-level name to each connection.
    http_protocol.WebRequest = WebRequest


_correct_daphne()

from chat.runs.uploads import swept  # noqa: E402

# Every worker sweeps expired uploads (files for websocket runs that no run took), from its first
# connection on.
application = swept(application)

from chat.runs.reaper import reaping  # noqa: E402

# Every worker renews its lease on the runs it owns and closes the runs of workers that died
# (chat.runs.lease, chat.runs.reaper), from its first connection on.
application = reaping(application)

from chat.observability.loop_watch import watched  # noqa: E402

# The event loop watched in production: lag histogram, stalls logged with their stack.
if settings.CIRKELLINE_TELEMETRY:
    application = watched(application, settings.CIRKELLINE_LOOP_STALL_WARN_MS / 1000)

from cirkelline_site import process_tuning  # noqa: E402

# After everything is imported: the start-up heap is frozen out of later collections.
process_tuning.install()

from cirkelline_site import shutdown  # noqa: E402

# SIGTERM drains the process before Daphne stops it (cirkelline_site/shutdown.py).
shutdown.install()
