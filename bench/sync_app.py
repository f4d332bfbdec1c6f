"""BENCH ONLY: the seed system's "before" — sync ``team.run()`` inside an async Django view.

Reachable only through ``bench.settings_sync`` (``ROOT_URLCONF = "bench.sync_app"``); the
project's settings never route here. It exists so the load harness can show, through the
same HTTP stack and the same SSE wire format, what the pattern Cirkelline replaced does under
concurrency: the view is ``async def`` but iterates agno's *sync* ``Team.run(stream=True)``,
so every provider wait blocks the event loop and concurrent users are served one after the
other (≈ N × the single-run time).

The team is ``bench.teams.build_team`` (the Cirkelline team on stock agno ``OpenAILike``
models against the fake provider) without storage: agno's sync run path cannot use
Cirkelline's async Django storage, and leaving storage out only makes this baseline faster.
Authentication is Cirkelline's own (``chat.api.auth``), so the request path matches.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from chat.api.auth import authenticate
from chat.errors import AuthError

from .teams import build_team


@functools.cache
def _prototype() -> Any:
    return build_team(settings.CIRKELLINE_MODEL_BASE_URL)


def _frame(event: Any) -> bytes:
    return f"event: {event.event}\ndata: {event.to_json(separators=(',', ':'), indent=None)}\n\n".encode()


async def health(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@csrf_exempt
async def sync_run(request: HttpRequest, team_id: str) -> HttpResponse:
    if request.method != "POST":
        return JsonResponse({"detail": "POST only"}, status=405)
    try:
        caller = await authenticate(request)
    except AuthError as exc:
        return JsonResponse({"detail": exc.detail}, status=exc.status)
    message = request.POST.get("message", "")
    team = _prototype().deep_copy()

    async def stream() -> AsyncIterator[bytes]:
        # THE ANTI-PATTERN: a blocking iterator consumed on the event loop. Each next() waits
        # for the provider with the loop frozen, for every user of this process.
        for event in team.run(message, stream=True, stream_events=True, user_id=str(caller.pk)):
            yield _frame(event)

    return StreamingHttpResponse(stream(), content_type="text/event-stream", headers={"Cache-Control": "no-cache"})


urlpatterns = [
    path("health", health),
    path("teams/<str:team_id>/runs", sync_run),
]
