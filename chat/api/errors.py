"""The API's one map from failures to responses, the `api` view decorator that applies it, and
JSON for Django's own 400/403/404/500 pages.

Every error the API returns is JSON `{"detail": "..."}` with the status of the exception
(chat.errors.CirkellineError), plus the exception's extra fields; a 401 says how to authenticate
(`WWW-Authenticate`), a 429 when to retry (`Retry-After`), and a database outage is a 503 with
`Retry-After: 5`. The websocket maps the same classes in chat/ws/frames.py.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.exceptions import DisallowedHost
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chat.agents.team import resolve_team
from chat.errors import BadRequest, CirkellineError
from chat.models import validate_session_id

from . import limits
from .auth import authenticate

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "The database is unavailable right now; please retry shortly."


def error(http_status: int, detail: str, **extra: Any) -> JsonResponse:
    """An error response: `{"detail": ..., **extra}`; a 429 or 503 with `retry_after` gets `Retry-After` too."""
    response = JsonResponse({"detail": detail, **extra}, status=http_status)
    if http_status in (429, 503) and "retry_after" in extra:
        response["Retry-After"] = str(max(1, math.ceil(extra["retry_after"])))
    return response


def response_for(exc: CirkellineError) -> JsonResponse:
    """The response for one of the app's refusals."""
    response = error(exc.status, exc.detail, **exc.extra)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="cirkelline"'
    return response


def database_unavailable(request: HttpRequest) -> JsonResponse:
    logger.exception("database unavailable during %s %s", request.method, request.path)
    response = error(503, DATABASE_UNAVAILABLE)
    response["Retry-After"] = "5"
    return response


def _check_route(kwargs: dict[str, Any]) -> None:
    """The ids in the URL: a run or session id well-formed, a team one that exists (resolved here, once)."""
    if "run_id" in kwargs:
        try:
            validate_session_id(kwargs["run_id"])
        except BadRequest:
            raise BadRequest(400, "Invalid run id.") from None
    if "session_id" in kwargs:
        validate_session_id(kwargs["session_id"])
    if "team_id" in kwargs:
        kwargs["team_id"] = resolve_team(kwargs["team_id"])


def api(methods: tuple[str, ...], *, auth: bool = True, body: str = limits.API):
    """Decorator for API views: method check, the body's size (`body`: its kind, chat.api.limits;
    checked before authentication), authentication, the ids in the URL, and the error map."""

    def decorate(view: Callable[..., Awaitable[HttpResponse]]):
        @csrf_exempt  # CSRF applies to cookie-authenticated calls only; chat.api.auth enforces it.
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error(405, f"Method {request.method} is not allowed here.")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                limits.check(request, body)
                if auth:
                    kwargs["caller"] = await authenticate(request)
                _check_route(kwargs)
                return await view(request, *args, **kwargs)
            except CirkellineError as exc:
                return response_for(exc)
            except (OperationalError, InterfaceError):
                return database_unavailable(request)

        wrapper.body_kind = body  # read by chat.api.limits.BodyLimit, in front of Django
        return wrapper

    return decorate


# --- JSON for Django's own 400/403/404/500 pages ---------------------------------------------


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's refusals outside the API's own checks: a Host header not in DJANGO_ALLOWED_HOSTS,
    a body Django will not parse, other suspicious requests."""
    if isinstance(exception, DisallowedHost):
        return error(400, "The Host header names a host this server does not answer to.")
    return error(400, "Bad request.")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error(403, "Forbidden.")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error(404, "Not found.")


def server_error(request: HttpRequest) -> HttpResponse:
    return error(500, "Internal server error.")
