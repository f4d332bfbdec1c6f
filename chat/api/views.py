"""The HTTP API (async views), wire-compatible with agno AgentOS where AgentOS has the route.

Views parse, authenticate and map outcomes to HTTP; the run service (chat.runs) and the session
queries (chat.models, through chat.storage.executor) do the work. Every error is JSON
`{"detail": ...}` (chat.api.errors).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from chat import runs
from chat.agents.providers import model_spec
from chat.agents.runtime import chat_history
from chat.agents.team import team_ids
from chat.errors import BadRequest, RunNotFound, SessionNotFound
from chat.identity import Caller
from chat.models import (
    SESSION_ID_RE,
    SESSION_SORT_FIELDS,
    ChatRun,
    ChatSession,
    NamedBy,
    session_renamed,
    validate_session_id,
)
from chat.payload import check_text
from chat.records import session_record
from chat.runs import uploads
from chat.runs.pause import expire_run_if_stale
from chat.runs.resume import find_run
from chat.runs.teams import describe_team, describe_team_detail
from chat.storage.executor import run_db
from metrics.models import RunStatus

from . import limits, openapi, schemas, sse
from .errors import api, error
from .parsing import body_fields, event_index, form_fields, integer, json_body, parse_run_request, uploaded_files

logger = logging.getLogger(__name__)

INSTANTIATED_AT = datetime.now(UTC).isoformat()
ERROR_STATUS = {"provider_error": 502, "timeout": 504, "rate_limited": 429, "internal": 500}


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
    return JsonResponse(describe_team_detail(team_id))


@api(("POST",), body=limits.RUN)
async def create_run(request: HttpRequest, team_id: str, caller: Caller) -> HttpResponse:
    run_request, stream = await parse_run_request(request, caller, team_id)
    handle = await runs.start_run(run_request)
    return await _answer(handle, stream)


async def _answer(handle: runs.RunHandle, stream: bool) -> HttpResponse:
    """A run's response: its SSE stream, or (stream=false) its result once it ended."""
    if stream:
        return StreamingHttpResponse(sse.stream(handle), content_type="text/event-stream", headers=sse.HEADERS)
    try:
        result = await handle.wait()
    except asyncio.CancelledError:
        # The client went away: the run goes on and is stored (GET .../runs/{run_id} has it),
        # unless CIRKELLINE_ON_DISCONNECT is `cancel`.
        if settings.CIRKELLINE_ON_DISCONNECT == "cancel":
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


@api(("POST",), body=limits.RUN)
async def continue_run(request: HttpRequest, team_id: str, run_id: str, caller: Caller) -> HttpResponse:
    """`POST /teams/{team_id}/runs/{run_id}/continue` (AgentOS's route and form fields): a paused
    run continued with its user's answers (`requirements`), streamed or not, on any worker."""
    if (request.content_type or "").lower() == "application/json":
        fields = await json_body(request)
    else:
        fields = await form_fields(request)
    continued = runs.continue_request_from_fields(fields, user_pk=caller.pk, username=caller.username,
                                                  team_id=team_id, run_id=run_id)
    handle = await runs.continue_run(continued)
    return await _answer(handle, continued.streamed)


@api(("POST",))
async def cancel_run(request: HttpRequest, team_id: str, run_id: str, caller: Caller) -> HttpResponse:
    status = await runs.cancel_run(caller.pk, run_id)
    return JsonResponse({"run_id": run_id, "status": status})


@api(("POST", "GET"))
async def resume_run(request: HttpRequest, team_id: str, run_id: str, caller: Caller) -> HttpResponse:
    """`POST /teams/{team_id}/runs/{run_id}/resume` (AgentOS's form fields `last_event_index` and
    `session_id`; or the standard `Last-Event-ID` header). GET takes them from the query string,
    for EventSource clients. The run's stream from there on, on any worker (chat.api.sse.resume)."""
    if request.method == "GET":
        fields = dict(request.GET.items())
        check_text("The query", fields)
    else:
        fields = await body_fields(request)
    after = event_index(fields.get("last_event_index"), "'last_event_index'")
    if after is None:
        after = event_index(request.headers.get("Last-Event-ID"), "The Last-Event-ID header")
    session_id = fields.get("session_id") or None
    if session_id is not None:
        if not isinstance(session_id, str):
            raise BadRequest(400, "'session_id' must be a string.")
        validate_session_id(session_id)
    found = await find_run(caller.pk, team_id, run_id, session_id)
    return StreamingHttpResponse(sse.resume(found, after), content_type="text/event-stream", headers=sse.HEADERS)


@api(("GET",))
async def run_detail(request: HttpRequest, team_id: str, run_id: str, caller: Caller) -> HttpResponse:
    handle = runs.live_run(run_id)
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
    stored = await run_db(ChatRun.objects.find, caller.pk, run_id)
    if stored is not None and stored["status"] == "PAUSED" and await expire_run_if_stale(caller.pk, run_id):
        stored = await run_db(ChatRun.objects.find, caller.pk, run_id)  # expired just now
    if stored is None:
        raise RunNotFound(run_id)
    payload = stored["payload"]
    if payload.get("team_id") not in (None, team_id) and not payload.get("agent_id"):
        raise RunNotFound(run_id)
    return JsonResponse(schemas.run(payload, str(caller.pk)))


# --- sessions ------------------------------------------------------------------------------


@api(("GET",))
async def sessions(request: HttpRequest, caller: Caller) -> HttpResponse:
    started = time.perf_counter()
    session_type = request.GET.get("type", "team")
    if session_type not in ("team", "agent", "workflow"):
        raise BadRequest(400, "'type' must be team, agent or workflow.")
    limit = integer(request.GET.get("limit"), "limit", 20, lo=1, hi=100)
    page = integer(request.GET.get("page"), "page", 1, lo=1, hi=1_000_000)
    sort_order = request.GET.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise BadRequest(400, "'sort_order' must be asc or desc.")
    check_text("The query", dict(request.GET.items()))
    sort_by = request.GET.get("sort_by", "created_at")
    if sort_by not in SESSION_SORT_FIELDS:
        raise BadRequest(400, f"'sort_by' must be one of {', '.join(SESSION_SORT_FIELDS)}.")
    if session_type != "team":
        rows, total = [], 0
    else:
        rows, total = await run_db(
            ChatSession.objects.page, caller.pk, limit=limit, page=page, sort_by=sort_by, sort_order=sort_order,
            session_name=request.GET.get("session_name") or None,
            component_id=request.GET.get("component_id") or None,
        )
    data = [schemas.session_summary(session_record(row)) for row in rows]
    meta = schemas.page_meta(page=page, limit=limit, total=total, elapsed_ms=(time.perf_counter() - started) * 1000)
    return JsonResponse({"data": data, "meta": meta})


@api(("GET", "DELETE"))
async def session_detail(request: HttpRequest, session_id: str, caller: Caller) -> HttpResponse:
    if request.method == "DELETE":
        if not await run_db(ChatSession.objects.remove, caller.pk, session_id):
            raise SessionNotFound(session_id)
        return HttpResponse(status=204)
    record = await run_db(_session_with_history, caller.pk, session_id)
    if record is None:
        raise SessionNotFound(session_id)
    return JsonResponse(schemas.session_detail(record))


def _session_with_history(user_pk: int, session_id: str) -> dict | None:
    """The user's session with its runs and agno's chat history of it (sync: in the executor)."""
    record = ChatSession.objects.detail(user_pk, session_id)
    if record is not None:
        record["chat_history"] = chat_history(record)
    return record


RUNS_PAGE_SIZE = 20  # GET /sessions/{id}/runs with `before` and no `limit`


@api(("GET",))
async def session_runs(request: HttpRequest, session_id: str, caller: Caller) -> HttpResponse:
    """Without `limit` and `before`: every ended run, AgentOS's answer (agent-ui reads it). With
    either: a page of it, latest first (ChatSessionQuerySet.run_page), the same array of runs; the
    cursor of the page before it in `X-Next-Before` and a `Link: <...>; rel="next"` header, both
    absent on the oldest page."""
    if "limit" not in request.GET and "before" not in request.GET:
        payloads = await run_db(ChatSession.objects.run_payloads, caller.pk, session_id)
        if payloads is None:
            raise SessionNotFound(session_id)
        return JsonResponse([schemas.run(p, str(caller.pk)) for p in payloads], safe=False)
    check_text("The query", dict(request.GET.items()))
    limit = integer(request.GET.get("limit"), "limit", RUNS_PAGE_SIZE, lo=1, hi=100)
    before = request.GET.get("before")
    if before is not None and not SESSION_ID_RE.match(before):
        raise BadRequest(400, "'before' must be a run id: 1-64 letters, digits, '-', '_', '.' or ':'.")
    page = await run_db(ChatSession.objects.run_page, caller.pk, session_id, limit=limit, before=before)
    if page is None:
        raise SessionNotFound(session_id)
    payloads, cursor = page
    response = JsonResponse([schemas.run(p, str(caller.pk)) for p in payloads], safe=False)
    if cursor is not None:
        response["X-Next-Before"] = cursor
        query = urlencode({"limit": limit, "before": cursor})
        response["Link"] = f'</sessions/{quote(session_id, safe="")}/runs?{query}>; rel="next"'
    return response


@api(("POST",))
async def rename_session(request: HttpRequest, session_id: str, caller: Caller) -> HttpResponse:
    name = (await body_fields(request)).get("session_name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest(400, "'session_name' is required: a non-empty string of at most 255 characters.")
    record = await run_db(ChatSession.objects.rename, caller.pk, session_id, name.strip())
    if record is None:
        raise SessionNotFound(session_id)
    try:  # the user's open pages show the new name at once (chat.ws.notices)
        await session_renamed.asend(sender=ChatSession, user_id=caller.pk, session_id=session_id,
                                    session_name=name.strip(), named_by=NamedBy.USER)
    except Exception:  # noqa: BLE001 - the rename stands; other pages see it at their next refresh
        logger.exception("could not tell the sockets of user %s that session %s was renamed", caller.pk, session_id)
    return JsonResponse(schemas.session_detail(record))


# --- files for websocket runs --------------------------------------------------------------


@api(("POST",), body=limits.UPLOAD)
async def upload(request: HttpRequest, caller: Caller) -> HttpResponse:
    """`POST /uploads` (multipart `files`): ids to name in a websocket `run` frame (chat.runs.uploads)."""
    attachments = await uploaded_files(request)
    if not attachments:
        raise BadRequest(400, "Send one or more files as multipart form field 'files'.")
    saved = await uploads.save(caller.pk, attachments)
    return JsonResponse({"files": saved, "expires_in": int(uploads.UPLOAD_TTL)}, status=201)


# --- the contract ---------------------------------------------------------------------------


@api(("GET",), auth=False)
async def openapi_json(request: HttpRequest) -> HttpResponse:
    """`GET /openapi.json`: the OpenAPI 3.1 document of this API (chat.api.openapi)."""
    return HttpResponse(openapi.document_json(), content_type="application/json")
