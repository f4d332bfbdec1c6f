"""The HTTP API (async views), wire-compatible with agno AgentOS where AgentOS has the route.

Views parse, authenticate and map outcomes to HTTP; the run service (chat.runner) and the
storage module (chat.storage) do the work. Every error is JSON `{"detail": ...}`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from metrics.models import RunStatus

from . import runner, schemas, storage
from .auth import AuthError, Caller, authenticate
from .events import coalesce, error_frame, sse_frame
from .parsing import BadRequest, check_text, form_fields, json_body, parse_run_request, validate_session_id
from .providers import model_spec
from .team import UnknownTeam, describe_team, describe_team_detail, is_known_team, prototype, team_ids

logger = logging.getLogger(__name__)

INSTANTIATED_AT = datetime.now(UTC).isoformat()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
ERROR_STATUS = {"provider_error": 502, "timeout": 504, "rate_limited": 429, "internal": 500}
STREAM_FAILED = ("Something went wrong while sending this run's events, so the stream was ended and the run "
                 "stopped. Please try again.")


def error(http_status: int, detail: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"detail": detail, **extra}, status=http_status)
    if http_status == 429 and "retry_after" in extra:
        response["Retry-After"] = str(max(1, math.ceil(extra["retry_after"])))
    return response


def api(methods: tuple[str, ...], *, auth: bool = True):
    """Decorator for API views: method check, authentication, and one place mapping errors."""

    def decorate(view: Callable[..., Awaitable[HttpResponse]]):
        @csrf_exempt  # CSRF applies to cookie-authenticated calls only; chat.auth enforces it.
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error(405, f"Method {request.method} is not allowed here.")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                if auth:
                    kwargs["caller"] = await authenticate(request)
                return await view(request, *args, **kwargs)
            except AuthError as exc:
                response = error(exc.status, exc.detail)
                if exc.status == 401:
                    response["WWW-Authenticate"] = 'Bearer realm="cirkelline"'
                return response
            except BadRequest as exc:
                return error(exc.status, exc.detail, **exc.extra)
            except (UnknownTeam, storage.SessionNotFound, runner.RunNotFound) as exc:
                return error(404, _not_found(exc))
            except runner.RunAlreadyEnded as exc:
                return error(409, f"The run has already ended ({exc.status}).", status=exc.status)
            except runner.AdmissionRefused as exc:
                return error(429, exc.detail, retry_after=exc.retry_after)
            except (OperationalError, InterfaceError):
                logger.exception("database unavailable during %s %s", request.method, request.path)
                response = error(503, "The database is unavailable right now; please retry shortly.")
                response["Retry-After"] = "5"
                return response

        return wrapper

    return decorate


def _not_found(exc: Exception) -> str:
    if isinstance(exc, UnknownTeam):
        return "Team not found."
    if isinstance(exc, storage.SessionNotFound):
        return "Session not found."
    return "Run not found."


# --- service ------------------------------------------------------------------------------


@api(("GET",), auth=False)
async def health(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok", "instantiated_at": INSTANTIATED_AT})


@api(("GET",), auth=False)
async def config(request: HttpRequest) -> HttpResponse:
    spec = model_spec()
    teams = [describe_team(team_id) for team_id in team_ids()]
    return JsonResponse(
        {
            "status": "healthy",
            "service": "cirkelline-system-backend",
            "version": settings.CIRKELLINE_VERSION,
            # AgentOS ConfigResponse fields
            "os_id": "cirkelline",
            "name": "Cirkelline",
            "description": "Multi-agent assistant: Cirkelline and her specialists",
            "available_models": [{"id": spec.model_id or spec.provider, "provider": spec.provider}],
            "os_database": "cirkelline-django",
            "databases": ["cirkelline-django"],
            "agents": [],
            "teams": teams,
            "workflows": [],
            "interfaces": [],
        }
    )


# --- teams and runs ------------------------------------------------------------------------


@api(("GET",))
async def teams(request: HttpRequest, caller: Caller) -> HttpResponse:
    return JsonResponse([describe_team(team_id) for team_id in team_ids()], safe=False)


@api(("GET",))
async def team_detail(request: HttpRequest, team_id: str, caller: Caller) -> HttpResponse:
    if not is_known_team(team_id):
        raise UnknownTeam(team_id)
    return JsonResponse(describe_team_detail(team_id))


async def _sse(handle: runner.RunHandle) -> AsyncIterator[bytes]:
    """The run's events as SSE frames, ending with exactly one terminal frame whatever happens.

    If sending fails (encoding an event, merging deltas, reading the run's events), the run is
    stopped and, once its rows are written, one `TeamRunError` of our own ends the stream: the
    failed batch was not sent, so no terminal frame of the run's own went out before it. Without
    this the response would stop mid-stream with no terminal frame and the connection stay open.
    """
    try:
        async for batch in handle.event_batches():
            yield b"".join(sse_frame(event) for event in coalesce(batch))
    except Exception:
        logger.exception("run %s: sending its events failed; ending the stream", handle.run_id)
        try:
            handle.abort(RunStatus.ERROR)
            await handle.wait()
        except Exception:  # noqa: BLE001 - the client still gets its terminal frame
            logger.exception("run %s: stopping it after a stream failure failed", handle.run_id)
        yield error_frame(run_id=handle.run_id, session_id=handle.session_id, team_id=handle.team_id,
                          team_name=prototype(handle.team_id).name, content=STREAM_FAILED)
    except BaseException:
        # The client went away (Django cancels the response, or closes this generator): stop
        # the run. Its rows are still written by the run task.
        handle.abort(RunStatus.CANCELLED)
        raise


@api(("POST",))
async def create_run(request: HttpRequest, team_id: str, caller: Caller) -> HttpResponse:
    if not is_known_team(team_id):
        raise UnknownTeam(team_id)
    run_request, stream = parse_run_request(request, caller, team_id)
    handle = await runner.start_run(run_request)
    if stream:
        return StreamingHttpResponse(_sse(handle), content_type="text/event-stream", headers=SSE_HEADERS)
    try:
        result = await handle.wait()
    except asyncio.CancelledError:
        handle.abort(RunStatus.CANCELLED)
        raise
    if result.error_type:
        return error(
            500 if result.storage_refused else 503 if result.storage_failed else ERROR_STATUS[result.error_type],
            result.message,
            error_type=result.error_type,
            run_id=result.run_id,
            session_id=result.session_id,
            **({"retry_after": result.retry_after or 1} if result.error_type == "rate_limited" else {}),
        )
    return JsonResponse(result.output_dict())


def _check_run_id(run_id: str) -> None:
    try:
        validate_session_id(run_id)
    except BadRequest:
        raise BadRequest(400, "Invalid run id.") from None


@api(("POST",))
async def cancel_run(request: HttpRequest, team_id: str, run_id: str, caller: Caller) -> HttpResponse:
    _check_run_id(run_id)
    if not is_known_team(team_id):
        raise UnknownTeam(team_id)
    status = await runner.cancel_run(caller.pk, run_id)
    return JsonResponse({"run_id": run_id, "status": status})


@api(("GET",))
async def run_detail(request: HttpRequest, team_id: str, run_id: str, caller: Caller) -> HttpResponse:
    _check_run_id(run_id)
    if not is_known_team(team_id):
        raise UnknownTeam(team_id)
    handle = runner.live_run(run_id)
    if handle is not None and handle.user_id == caller.pk and handle.team_id == team_id:
        return JsonResponse(
            {
                "run_id": run_id,
                "team_id": team_id,
                "session_id": handle.session_id,
                "user_id": str(caller.pk),
                "status": "RUNNING",
                "content": handle.account.partial_content,
                "created_at": handle.started_at.isoformat(),
            }
        )
    stored = await storage.run_for_user(caller.pk, run_id)
    if stored is None:
        raise runner.RunNotFound(run_id)
    payload = stored["payload"]
    if payload.get("team_id") not in (None, team_id) and not payload.get("agent_id"):
        raise runner.RunNotFound(run_id)
    return JsonResponse(schemas.run(payload, str(caller.pk)))


# --- sessions ------------------------------------------------------------------------------


def _int_param(request: HttpRequest, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(400, f"'{name}' must be an integer.") from None
    if not lo <= value <= hi:
        raise BadRequest(400, f"'{name}' must be between {lo} and {hi}.")
    return value


@api(("GET",))
async def sessions(request: HttpRequest, caller: Caller) -> HttpResponse:
    started = time.perf_counter()
    session_type = request.GET.get("type", "team")
    if session_type not in ("team", "agent", "workflow"):
        raise BadRequest(400, "'type' must be team, agent or workflow.")
    limit = _int_param(request, "limit", 20, lo=1, hi=100)
    page = _int_param(request, "page", 1, lo=1, hi=1_000_000)
    sort_order = request.GET.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise BadRequest(400, "'sort_order' must be asc or desc.")
    check_text("The query", dict(request.GET.items()))
    sort_by = request.GET.get("sort_by", "created_at")
    if sort_by not in storage.SESSION_SORT_FIELDS:
        raise BadRequest(400, f"'sort_by' must be one of {', '.join(storage.SESSION_SORT_FIELDS)}.")
    if session_type != "team":
        rows, total = [], 0
    else:
        rows, total = await storage.list_sessions(
            caller.pk, limit=limit, page=page, sort_by=sort_by, sort_order=sort_order,
            session_name=request.GET.get("session_name") or None,
            component_id=request.GET.get("component_id") or None,
        )
    data = [schemas.session_summary(storage.session_record(row)) for row in rows]
    meta = schemas.page_meta(page=page, limit=limit, total=total, elapsed_ms=(time.perf_counter() - started) * 1000)
    return JsonResponse({"data": data, "meta": meta})


@api(("GET", "DELETE"))
async def session_detail(request: HttpRequest, session_id: str, caller: Caller) -> HttpResponse:
    validate_session_id(session_id)
    if request.method == "DELETE":
        if not await storage.delete_session(caller.pk, session_id):
            raise storage.SessionNotFound(session_id)
        return HttpResponse(status=204)
    record = await storage.session_detail(caller.pk, session_id)
    if record is None:
        raise storage.SessionNotFound(session_id)
    return JsonResponse(schemas.session_detail(record))


@api(("GET",))
async def session_runs(request: HttpRequest, session_id: str, caller: Caller) -> HttpResponse:
    validate_session_id(session_id)
    payloads = await storage.session_runs(caller.pk, session_id)
    if payloads is None:
        raise storage.SessionNotFound(session_id)
    return JsonResponse([schemas.run(p, str(caller.pk)) for p in payloads], safe=False)


@api(("POST",))
async def rename_session(request: HttpRequest, session_id: str, caller: Caller) -> HttpResponse:
    validate_session_id(session_id)
    name = _json_body(request).get("session_name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest(400, "'session_name' is required: a non-empty string of at most 255 characters.")
    record = await storage.rename_session(caller.pk, session_id, name.strip())
    if record is None:
        raise storage.SessionNotFound(session_id)
    return JsonResponse(schemas.session_detail(record))


def _json_body(request: HttpRequest) -> dict:
    if (request.content_type or "").lower() == "application/json":
        return json_body(request, empty=b"{}")
    return form_fields(request)


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
