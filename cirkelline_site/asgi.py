"""ASGI entry point (Daphne or any ASGI server): HTTP through Django, websockets through Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

# Build the Django app before importing anything that touches models: the app registry
# must be ready first.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

http_app = django_asgi_app
if settings.CIRKELLINE_SERVE_STATIC:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402

from chat.ws.routing import AllowedHostsOriginValidator, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": http_app,
    # Origin checked against ALLOWED_HOSTS (browsers), then the session cookie's user (pages).
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})

from chat.memory import tune_gc  # noqa: E402

tune_gc()  # after everything is imported: the start-up heap is frozen out of later collections

if settings.CIRKELLINE_STATS_DIR:  # benchmark instrumentation only (see chat/loopstats.py)
    from chat.loopstats import instrument

    application = instrument(application, settings.CIRKELLINE_STATS_DIR)
