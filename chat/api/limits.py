"""How large a request body each route takes, enforced before anything reads or parses it.

A route declares its kind of body (`api(..., body=...)`, or `accepts(kind)` on another view):

- `API` (every `api` view's default, and the token routes): a small JSON or form body,
  CIRKELLINE_MAX_API_BODY_BYTES;
- `RUN`: a run's JSON or form body, CIRKELLINE_MAX_RUN_BODY_BYTES, and as multipart (files) the
  upload limit;
- `UPLOAD`: multipart with files: CIRKELLINE_MAX_FILES x CIRKELLINE_MAX_FILE_BYTES plus a run
  body for the fields and part headers;
- `DOCUMENT`: a document for "My documents", a file or its text: CIRKELLINE_KNOWLEDGE_MAX_BYTES
  plus a run body.

Any other route (pages, admin) takes CIRKELLINE_MAX_BODY_BYTES.

Two places enforce it, with the same numbers: `BodyLimit`, the ASGI middleware in front of
Django (cirkelline_site/asgi.py), and the view's own check (`check`: the `api` decorator, or
`accepts`), before authentication. A declared length over the limit: the middleware hands Django
an empty body in place of the client's, and the view answers the 413, so the refusal carries
every header the site's middleware adds (request id, CORS, security). A body without a length
(chunked) is counted as it arrives; past the limit Django is told the client left and the
middleware answers 413 itself, as it does on a route that declares no kind.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from django.conf import settings
from django.http import JsonResponse
from django.urls import Resolver404, resolve

from chat.errors import BadRequest

API, RUN, UPLOAD, DOCUMENT = "api", "run", "upload", "document"
MULTIPART = "multipart/form-data"
# A request with neither header has no body (any method: a GET's body is capped too).
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


def limit(kind: str | None, content_type: str) -> int:
    """The largest body, in bytes, a route of `kind` takes with this content type."""
    if kind == API:
        return settings.CIRKELLINE_MAX_API_BODY_BYTES
    if kind in (RUN, UPLOAD):
        if kind == UPLOAD or content_type.split(";", 1)[0].strip().lower() == MULTIPART:
            return settings.CIRKELLINE_MAX_FILES * settings.CIRKELLINE_MAX_FILE_BYTES + \
                settings.CIRKELLINE_MAX_RUN_BODY_BYTES
        return settings.CIRKELLINE_MAX_RUN_BODY_BYTES
    if kind == DOCUMENT:
        return settings.CIRKELLINE_KNOWLEDGE_MAX_BYTES + settings.CIRKELLINE_MAX_RUN_BODY_BYTES
    return settings.CIRKELLINE_MAX_BODY_BYTES


def too_large(maximum: int) -> BadRequest:
    return BadRequest(413, f"The request body is too large: the limit for this route is {maximum} bytes.",
                      limit=maximum)


def check(request: Any, kind: str) -> None:
    """413 if the request's declared length is over its route's limit (see the module docstring)."""
    length = request.META.get("CONTENT_LENGTH")
    if length:
        maximum = limit(kind, request.META.get("CONTENT_TYPE", ""))
        try:
            declared = int(length)
        except ValueError:
            raise BadRequest(400, "The Content-Length header is not a number.") from None
        if declared > maximum:
            raise too_large(maximum)


def accepts(kind: str):
    """Declare the body kind of a (sync) view that is not an `api` view (the token routes) and
    check it there."""

    def mark(view):
        @functools.wraps(view)
        def checked(request, *args, **kwargs):
            try:
                check(request, kind)
            except BadRequest as exc:
                return JsonResponse({"detail": exc.detail, **exc.extra}, status=exc.status)
            return view(request, *args, **kwargs)

        checked.body_kind = kind
        return checked

    return mark


@functools.lru_cache(maxsize=512)
def _route_kind(path: str) -> str | None:
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return getattr(match.func, "body_kind", None)


def route_kind(path: str) -> str | None:
    # Paths with ids in them (sessions, runs) would fill the cache with one-off entries; the few
    # routes taking large bodies have fixed paths apart from the team id.
    return _route_kind(path) if len(path) <= 200 else None


class BodyLimit:
    """ASGI middleware (HTTP only): a body over its route's limit is answered with 413 JSON, on its
    Content-Length before the app runs, or as soon as the bytes received pass the limit; the app
    then sees the client as gone (`http.disconnect`) and stops reading."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or ()
        declared: int | None = None
        content_type = ""
        has_body = False
        for name, value in headers:
            if name in _BODY_HEADERS:
                has_body = True
                if name == b"content-length":
                    try:
                        declared = int(value)
                    except ValueError:
                        declared = None
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        if not has_body:
            return await self.app(scope, receive, send)
        kind = route_kind(scope.get("path", ""))
        maximum = limit(kind, content_type)
        if declared is not None and declared > maximum:
            if kind is not None:  # the view refuses it, with the site's headers; its body is never read
                return await self.app(scope, _without_body(receive), send)
            return await _refuse(send, maximum)
        state = {"received": 0, "over": False, "started": False}

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request" and not state["over"]:
                state["received"] += len(message.get("body", b""))
                if state["received"] > maximum:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counted_receive, tracked_send)
        if state["over"] and not state["started"]:
            await _refuse(send, maximum)


def _without_body(receive):
    """`receive` for a request whose body is not to be read: an empty one, then only what is not
    the body (Django listens for the client leaving)."""
    given = False

    async def empty():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message

    return empty


async def _refuse(send, maximum: int) -> None:
    exc = too_large(maximum)
    body = json.dumps({"detail": exc.detail, **exc.extra}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
