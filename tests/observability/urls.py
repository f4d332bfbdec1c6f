"""The site's URLs plus two test-only views: one that logs, one that blocks the event loop."""

import logging
import time

from django.http import JsonResponse
from django.urls import path

from cirkelline_site.urls import urlpatterns as site_urlpatterns

logger = logging.getLogger("tests.observability")


async def log_a_line(request):
    logger.warning("a line logged while answering the request")
    return JsonResponse({"detail": "I'm a teapot."}, status=418)


async def hold_the_loop_for_a_second(request):
    time.sleep(1)  # noqa: ASYNC251 - deliberately blocks the event loop: the stall the watch must report
    return JsonResponse({"blocked": True})


urlpatterns = [
    path("test-only/log", log_a_line),
    path("test-only/block", hold_the_loop_for_a_second),
    *site_urlpatterns,
]

handler400 = "chat.api.errors.bad_request"
handler403 = "chat.api.errors.forbidden"
handler404 = "chat.api.errors.not_found"
handler500 = "chat.api.errors.server_error"
