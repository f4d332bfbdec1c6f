"""The request id and the HTTP metrics of every Django request (first in MIDDLEWARE).

Async only (`sync_capable = False`): under ASGI Django then calls it inline on the event loop,
with no hand-off to a worker thread (see chat/middleware.py for what those hand-offs cost).

- The id: X-Request-ID when it is a sane token, else a new one (request_id.sanitize); set in
  the request's context (and so in the run task the request starts), returned as X-Request-ID
  on every response, streaming ones included, and added to JSON error bodies
  (`{"detail": ..., "request_id": ...}`) so a user can quote it.
- The metrics: requests by route template, method and status; the duration of non-streaming
  responses (a streaming response's end is not seen here); requests in progress.

The id is reset when a response leaves, except a streaming one: Django sends a streaming body
from the same task after this returns, and that body's log lines must carry the id too (the
task ends with the request). A run task the request started has its own copy of the context.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from . import prom
from .request_id import REQUEST_ID_HEADER, request_id_var, sanitize

_HEADER_KEY = "HTTP_X_REQUEST_ID"


def route_of(request: HttpRequest) -> str:
    """The URL pattern that served the request (bounded label values, never the raw path)."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return match.route
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


def _with_request_id(response: HttpResponseBase, request_id: str) -> None:
    """Add `request_id` to a JSON error body that has a "detail"."""
    if response.streaming or not response.get("Content-Type", "").startswith("application/json"):
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    if not isinstance(body, dict) or "detail" not in body or "request_id" in body:
        return
    body["request_id"] = request_id
    response.content = json.dumps(body).encode()
    if response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))


class RequestIdMiddleware:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        self.telemetry = settings.CIRKELLINE_TELEMETRY
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = sanitize(request.META.get(_HEADER_KEY))
        token = request_id_var.set(request_id)
        request.request_id = request_id
        if self.telemetry:
            started = time.perf_counter()
            prom.HTTP_IN_PROGRESS.inc()
            try:
                response = await self.get_response(request)
            finally:
                prom.HTTP_IN_PROGRESS.dec()
        else:
            response = await self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        if response.status_code >= 400:
            _with_request_id(response, request_id)
        if self.telemetry:
            seconds = None if response.streaming else time.perf_counter() - started
            prom.observe_http(route_of(request), request.method or "", response.status_code, seconds)
        if not response.streaming:
            request_id_var.reset(token)  # a run it started copied the context already
        return response
