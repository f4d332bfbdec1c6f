"""Static files (the admin's CSS and JS) served by WhiteNoise without leaving the event loop.

WhiteNoise decides *what* is served: its index of files, built once at start-up from the apps'
static folders and STATIC_ROOT (settings.py). A path not in that index, such as
`/static/../../cirkelline_site/settings.py`, is never looked up on disk; it goes on to Django,
which answers 404.

This subclass changes only *how*, and overrides WhiteNoise internals to do it (its `__call__`
and `add_files`; tests/site/test_library_drift.py pins them). WhiteNoise 6.12's Django
middleware is synchronous: Django would run it in a worker thread and hop back to the loop for
the rest of the chain on every request, API runs included (a saving: "WhiteNoise as async
middleware" in docs/PERFORMANCE.md; chat/api/django_overrides.py says why those hops matter),
and its file response is a synchronous iterator that Django's ASGI handler reads whole, in a
thread, warning each time. Here the index lookup is a dictionary read on the loop, and a file
is opened and read in blocks in worker threads.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

BLOCK_SIZE = 64 * 1024


async def _blocks(file: BinaryIO) -> AsyncIterator[bytes]:
    read = sync_to_async(file.read, thread_sensitive=False)
    try:
        while block := await read(BLOCK_SIZE):
            yield block
    finally:
        file.close()


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise as async-only Django middleware (see the module docstring)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]):
        super().__init__(get_response)
        markcoroutinefunction(self)

    def add_files(self, root: Any, prefix: str | None = None) -> None:
        # STATIC_ROOT exists only once collectstatic has run; without it the finders index the
        # same files, so its absence is not worth WhiteNoise's start-up warning.
        if os.path.isdir(root):
            super().add_files(root, prefix)

    async def __call__(self, request: HttpRequest) -> HttpResponse:  # type: ignore[override]
        static_file = self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        found = await sync_to_async(static_file.get_response, thread_sensitive=False)(request.method, request.META)
        if found.file is None:  # HEAD, 304 Not Modified, 405
            response = HttpResponse(status=int(found.status))
        else:
            response = StreamingHttpResponse(_blocks(found.file), status=int(found.status))
        del response["Content-Type"]
        for name, value in found.headers:
            response[name] = value
        return response
