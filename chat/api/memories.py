"""AgentOS' memory routes, same shapes, always the caller's own memories:

    GET    /memories                 a page: ?topics=&search_content=&limit=&page=&sort_by=&sort_order=
    POST   /memories                 {"memory", "topics"?, "user_id"?} -> the memory (200, as AgentOS)
    DELETE /memories                 {"memory_ids": [...]} (or Cirkelline's {"all": true}) -> 204
    GET    /memories/{memory_id}     the memory
    PATCH  /memories/{memory_id}     {"memory", "topics"?, "user_id"?}: text and topics replaced
    DELETE /memories/{memory_id}     204
    GET    /memory_topics            the topics of your memories
    GET    /user_memory_stats        your count and last change, paged as AgentOS pages users

A `user_id` (query or body) naming anyone but the caller is a 403, as on the runs route; another
user's memory id is a 404, like an unknown one (never told apart). The work is chat.personal's
QuerySet (`UserMemory.objects`), through chat.storage.executor.run_db.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from chat.errors import BadRequest, NotFound
from chat.identity import Caller
from chat.models import SESSION_ID_RE
from chat.payload import check_text
from chat.personal.memories import SORT_FIELDS, UserMemory, clean_memory_text
from chat.storage.executor import run_db

from . import schemas
from .errors import api
from .parsing import integer, json_body

DELETE_IDS_MAX = 1000
# Query parameters each route takes (AgentOS' names; `db_id` and `table` are accepted and ignored:
# there is one memory store). Anything else is a 400 naming it.
_COMMON = ("user_id", "db_id", "table")
LIST_PARAMETERS = (*_COMMON, "agent_id", "team_id", "topics", "search_content", "limit", "page", "sort_by",
                   "sort_order")
_BODY_FIELDS = ("memory", "topics", "user_id")


class MemoryNotFound(NotFound):
    detail = "Memory not found."


def _iso(epoch: int | None) -> str | None:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z") if epoch is not None else None


def memory_json(record: dict) -> dict:
    """AgentOS' UserMemorySchema of a memory (chat.personal.memories.record)."""
    return {"memory_id": record["memory_id"], "memory": record["memory"], "topics": record["topics"],
            "agent_id": record["agent_id"], "team_id": record["team_id"], "user_id": record["user_id"],
            "updated_at": _iso(record["updated_at"])}


def _own(caller: Caller, user_id: Any) -> None:
    if user_id not in (None, "") and str(user_id) not in (str(caller.pk), caller.username):
        raise BadRequest(403, "'user_id' must be your own: memories are always the authenticated user's.")


def _query(request: HttpRequest, caller: Caller, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, each once (`topics` may repeat), all known, and the caller's own."""
    unknown = sorted(set(request.GET) - set(allowed))
    if unknown:
        raise BadRequest(400, f"Unknown query parameter '{unknown[0][:40]}': this route takes "
                              f"{', '.join(allowed)}.")
    params: dict[str, str] = {}
    for name, values in request.GET.lists():
        if len(values) > 1 and name != "topics":
            raise BadRequest(400, f"'{name}' is given more than once.")
        params[name] = values[-1]
    check_text("The query", dict(request.GET.lists()))
    _own(caller, params.get("user_id"))
    return params


def _topics(request: HttpRequest) -> list[str] | None:
    """`topics`, repeated (agno's client) or comma-separated (AgentOS' own parsing), or both."""
    names = [t.strip() for value in request.GET.getlist("topics") for t in value.split(",") if t.strip()]
    return names or None


async def _body(request: HttpRequest, caller: Caller, allowed: tuple[str, ...]) -> dict:
    if (request.content_type or "").lower() != "application/json":
        raise BadRequest(415, "Send a JSON object (Content-Type: application/json).")
    body = await json_body(request)
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest(400, f"Unknown field '{str(unknown[0])[:40]}': send {', '.join(allowed)}.")
    _own(caller, body.get("user_id"))
    return body


def _memory_id(memory_id: str) -> str:
    if not SESSION_ID_RE.match(memory_id):
        raise BadRequest(400, "Invalid memory id.")
    return memory_id


async def _save(caller: Caller, body: dict, memory_id: str | None) -> dict | None:
    text = clean_memory_text(body.get("memory"))
    if body.get("topics") is not None and not isinstance(body["topics"], list):
        raise BadRequest(400, "'topics' must be a list of strings.")
    return await run_db(UserMemory.objects.save_for, caller.pk, memory=text, memory_id=memory_id,
                        topics=body.get("topics"), create=memory_id is None, strict_topics=True)


@api(("GET", "POST", "DELETE"))
async def memories(request: HttpRequest, caller: Caller) -> HttpResponse:
    if request.method == "POST":
        _query(request, caller, _COMMON)
        return JsonResponse(memory_json(await _save(caller, await _body(request, caller, _BODY_FIELDS), None)))
    if request.method == "DELETE":
        _query(request, caller, _COMMON)
        return await _delete_many(caller, await _body(request, caller, ("memory_ids", "user_id", "all")))
    started = time.perf_counter()
    params = _query(request, caller, LIST_PARAMETERS)
    limit = integer(params.get("limit"), "limit", 20, lo=1, hi=100)
    page = integer(params.get("page"), "page", 1, lo=1, hi=1_000_000)
    sort_by = params.get("sort_by") or "updated_at"
    if sort_by not in SORT_FIELDS:
        raise BadRequest(400, f"'sort_by' must be one of {', '.join(SORT_FIELDS)}.")
    sort_order = params.get("sort_order") or "desc"
    if sort_order not in ("asc", "desc"):
        raise BadRequest(400, "'sort_order' must be asc or desc.")
    rows, total = await run_db(
        UserMemory.objects.page, caller.pk, topics=_topics(request), search=params.get("search_content") or None,
        agent_id=params.get("agent_id") or None, team_id=params.get("team_id") or None, limit=limit, page=page,
        sort_by=sort_by, sort_order=sort_order)
    meta = schemas.page_meta(page=page, limit=limit, total=total, elapsed_ms=(time.perf_counter() - started) * 1000)
    return JsonResponse({"data": [memory_json(r) for r in rows], "meta": meta})


async def _delete_many(caller: Caller, body: dict) -> HttpResponse:
    if body.get("all") is True and "memory_ids" not in body:
        await run_db(UserMemory.objects.clear, caller.pk)
        return HttpResponse(status=204)
    if "all" in body:
        raise BadRequest(400, "Send either 'memory_ids' or \"all\": true.")
    ids = body.get("memory_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise BadRequest(400, "'memory_ids' is required: a non-empty list of memory ids.")
    if len(ids) > DELETE_IDS_MAX:
        raise BadRequest(413, f"At most {DELETE_IDS_MAX} memory ids at once.")
    check_text("'memory_ids'", ids)
    await run_db(UserMemory.objects.remove, caller.pk, ids)  # yours among them; others' are not touched
    return HttpResponse(status=204)


@api(("GET", "PATCH", "DELETE"))
async def memory_detail(request: HttpRequest, memory_id: str, caller: Caller) -> HttpResponse:
    _query(request, caller, _COMMON)
    memory_id = _memory_id(memory_id)
    if request.method == "PATCH":
        saved = await _save(caller, await _body(request, caller, _BODY_FIELDS), memory_id)
        if saved is None:
            raise MemoryNotFound(memory_id)
        return JsonResponse(memory_json(saved))
    if request.method == "DELETE":
        if not await run_db(UserMemory.objects.remove, caller.pk, [memory_id]):
            raise MemoryNotFound(memory_id)
        return HttpResponse(status=204)
    found = await run_db(UserMemory.objects.one, caller.pk, memory_id)
    if found is None:
        raise MemoryNotFound(memory_id)
    return JsonResponse(memory_json(found))


@api(("GET",))
async def memory_topics(request: HttpRequest, caller: Caller) -> HttpResponse:
    _query(request, caller, _COMMON)
    return JsonResponse(await run_db(UserMemory.objects.topics_of, caller.pk), safe=False)


@api(("GET",))
async def user_memory_stats(request: HttpRequest, caller: Caller) -> HttpResponse:
    started = time.perf_counter()
    params = _query(request, caller, (*_COMMON, "limit", "page"))
    limit = integer(params.get("limit"), "limit", 20, lo=1, hi=100)
    page = integer(params.get("page"), "page", 1, lo=1, hi=1_000_000)
    stats = await run_db(UserMemory.objects.stats, caller.pk)
    rows = [] if stats is None or page > 1 else [
        {**stats, "last_memory_updated_at": stats["last_memory_updated_at"].astimezone(UTC).replace(microsecond=0)
         .isoformat().replace("+00:00", "Z")}]
    meta = schemas.page_meta(page=page, limit=limit, total=int(stats is not None),
                             elapsed_ms=(time.perf_counter() - started) * 1000)
    return JsonResponse({"data": rows, "meta": meta})
