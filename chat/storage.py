"""Sessions and runs in the Django database, for agno and for the HTTP API.

`DjangoAgnoDb` is the agno `AsyncBaseDb` the Cirkelline team uses. agno calls it on the
event loop, so every ORM call goes through `chat.db.run_db` (a thread pool).

Round trips per run are kept to two:
- when the run is admitted, the run service claims its session (`claim_session`): a new id is
  inserted for its owner in one atomic statement, an existing one is checked for its owner and
  loaded with its recent history; agno's `get_session` is then served from that. A session id
  is globally unique; another user's id is refused here (SessionNotFound), before anything runs;
- during the run, agno's `upsert_session` / `upsert_run` calls are buffered on the run's
  `RunContext`, and the run service writes them together with the run's usage row in one
  transaction at the end (`flush_run`). Writes that arrive after the flush (agno persists a
  run cancelled by a disconnect from a background task) go straight to the database. The
  final write only updates the claimed session: if its owner deleted it meanwhile, the run's
  rows are dropped (its usage row is still written) and the session stays deleted.

Outside a run (admin tooling, tests) every method reads and writes the database directly.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from agno.db.base import AsyncBaseDb, SessionType
from agno.db.utils import HISTORY_SKIP_STATUSES
from agno.run.agent import RunOutput
from agno.run.team import TeamRunOutput
from agno.session import TeamSession
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from metrics.recording import record_run_usage

from . import sqlwrite
from .db import run_db
from .models import ChatRun, ChatSession
from .runctx import RunContext, current_run

logger = logging.getLogger(__name__)


class SessionNotFound(Exception):
    """The session does not exist or belongs to someone else (callers never say which)."""


# --- conversions -------------------------------------------------------------------------


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def _from_epoch(value: Any) -> datetime:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return timezone.now()


def _owner_pk(user_id: Any) -> int | None:
    try:
        return int(user_id)
    except (TypeError, ValueError):
        return None


def session_record(row: ChatSession | dict, runs: list[dict] | None = None) -> dict:
    """An agno session dict (what `TeamSession.from_dict` reads) from a session row."""
    get = row.get if isinstance(row, dict) else (lambda k: getattr(row, k))
    data = dict(get("data") or {})
    record = {
        **data,
        "session_id": get("session_id"),
        "session_type": get("session_type"),
        "team_id": get("team_id") or data.get("team_id"),
        "user_id": str(get("user_id")),
        "created_at": _epoch(get("created_at")),
        "updated_at": _epoch(get("updated_at")),
        "runs": runs or [],
    }
    if get("session_name"):
        record.setdefault("session_data", {})
        record["session_data"] = {**(record["session_data"] or {}), "session_name": get("session_name")}
    return record


def _session_fields(session_dict: dict) -> dict:
    data = {k: v for k, v in session_dict.items() if k not in ("session_id", "user_id", "runs", "created_at",
                                                              "updated_at", "session_type")}
    session_data = data.get("session_data") or {}
    return {
        "team_id": session_dict.get("team_id") or "",
        "session_type": session_dict.get("session_type") or "team",
        "data": data,
        "explicit_name": session_data.get("session_name"),
    }


def run_input_text(payload: dict) -> str:
    """The user's message of a stored run payload (agno's `input.input_content`, else its user message)."""
    data = payload.get("input")
    if isinstance(data, dict) and data.get("input_content") is not None:
        content = data["input_content"]
        return content if isinstance(content, str) else str(content)
    for message in reversed(payload.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _run_row(run: Any, run_index: int | None) -> dict:
    payload = run if isinstance(run, dict) else run.to_dict()
    is_team = not payload.get("agent_id") and bool(payload.get("team_id"))
    status = payload.get("status") or "RUNNING"
    status = getattr(status, "value", status)
    return {
        "run_id": payload["run_id"],
        "parent_run_id": payload.get("parent_run_id"),
        "run_type": "team" if is_team else "agent",
        "component_id": (payload.get("team_id") if is_team else payload.get("agent_id")) or "",
        "status": str(status).upper(),
        "run_index": run_index,
        "payload": payload,
        "created_at": _from_epoch(payload.get("created_at")),
    }


# --- sync ORM work (run through chat.db.run_db) -------------------------------------------


def _history_runs(session_pk: int, limit: int) -> list[dict]:
    if limit <= 0:
        return []
    rows = (
        ChatRun.objects.filter(session_id=session_pk, parent_run_id__isnull=True)
        .exclude(status__in=HISTORY_SKIP_STATUSES)
        .order_by("-id")
        .values_list("payload", flat=True)[:limit]
    )
    return list(reversed(list(rows)))


def _load_for_run(session_id: str, user_pk: int | None, history_runs: int) -> dict | None:
    row = (
        ChatSession.objects.filter(session_id=session_id)
        .values("pk", "session_id", "user_id", "session_type", "team_id", "session_name", "data", "created_at",
                "updated_at")
        .first()
    )
    if row is None:
        return None
    if user_pk is not None and row["user_id"] != user_pk:
        raise SessionNotFound(session_id)
    return session_record(row, _history_runs(row["pk"], history_runs))


def _title(text: str) -> str:
    """A session name from the first user message: its first line, at most 100 characters."""
    text = text.strip()
    return text.splitlines()[0][:100] if text else ""


def _first_team_input(rows: list[dict]) -> str:
    for row in rows:
        if row["run_type"] == "team" and row["parent_run_id"] is None:
            return run_input_text(row["payload"])
    return ""


def _claim_for_run(session_id: str, user_pk: int, *, is_new: bool, team_id: str, name: str,
                   history_runs: int) -> dict | None:
    """Claim `session_id` for `user_pk`, or load it if it is already theirs.

    None for a session this call created (agno starts it afresh), the agno session record for
    one the user already had. Raises SessionNotFound when it belongs to another user.
    """
    if not is_new:
        record = _load_for_run(session_id, user_pk, history_runs)
        if record is not None:
            return record
    with connection.cursor() as cursor:
        if sqlwrite.claim_session(cursor, session_id=session_id, user_pk=user_pk, team_id=team_id, name=name,
                                  now=timezone.now()):
            return None
    # Claimed by someone else between the read and the insert (or a run of the same user on
    # the same new id, which may go on in it): the owner decides.
    record = _load_for_run(session_id, user_pk, history_runs)
    if record is None:  # claimed, then deleted at once: nobody's now, and this run did not get it
        raise SessionNotFound(session_id)
    return record


def _persist(session_dict: dict | None, session_id: str, user_pk: int, rows: list[dict]) -> bool:
    """Write a session's state and its runs; False (nothing written) if the user has no such session.

    The session row exists: the run claimed it when it was admitted. If it is gone, its owner
    deleted it while the run was live, and it stays deleted.
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        if session_dict is not None:
            fields = _session_fields(session_dict)
            session_pk = sqlwrite.update_session(
                cursor, session_id=session_id, user_pk=user_pk, team_id=fields["team_id"],
                explicit_name=fields["explicit_name"], fallback_name=_title(_first_team_input(rows)),
                data=fields["data"], now=now,
            )
        else:  # runs without their session's state (agno stored them late): the state stays as it is
            session_pk = sqlwrite.owned_session(cursor, session_id, user_pk)
        if session_pk is None:
            return False
        sqlwrite.upsert_runs(cursor, session_pk=session_pk, user_pk=user_pk, rows=rows, now=now)
    return True


def _flush_sync(session_dict, session_id, user_pk, rows, usage_fields) -> bool:
    with transaction.atomic():
        saved = _persist(session_dict, session_id, user_pk, rows) if (session_dict or rows) else True
        if usage_fields is not None:
            record_run_usage(usage_fields)
    return saved


def _write_direct(session_dict, session_id, user_pk, rows, *, claim: bool) -> bool:
    with transaction.atomic():
        if claim:  # outside a run (tooling): nothing claimed the session, so the write may create it
            with connection.cursor() as cursor:
                sqlwrite.claim_session(cursor, session_id=session_id, user_pk=user_pk,
                                       team_id=(session_dict or {}).get("team_id") or "",
                                       name=_title(_first_team_input(rows)), now=timezone.now())
        return _persist(session_dict, session_id, user_pk, rows)


# --- the run's write buffer ----------------------------------------------------------------


class WriteBuffer:
    """agno's storage writes during one run, kept in memory until the run's flush."""

    def __init__(self) -> None:
        self.session: dict | None = None
        self.runs: dict[str, dict] = {}
        self.closed = False

    def add_session(self, session_dict: dict) -> None:
        self.session = session_dict

    def add_run(self, row: dict) -> None:
        existing = self.runs.get(row["run_id"])
        if existing is not None and existing.get("run_index") is not None:
            row["run_index"] = existing["run_index"]
        self.runs[row["run_id"]] = row


async def claim_session(ctx: RunContext, session_id: str, user_pk: int, *, is_new: bool, team_id: str,
                        first_message: str) -> None:
    """Claim the run's session for its owner, before anything runs (one round trip).

    A new id becomes the user's session, named after `first_message`; an existing session of
    the user's is loaded with its recent history for agno. Raises SessionNotFound when the id
    belongs to another user (session ids are globally unique).
    """
    ctx.write_buffer = WriteBuffer()
    record = await run_db(_claim_for_run, session_id, user_pk, is_new=is_new, team_id=team_id,
                          name=_title(first_message), history_runs=settings.CIRKELLINE_HISTORY_RUNS)
    ctx.prefetched_session = (session_id, record)


def _settle_status(ctx: RunContext | None, row: dict) -> dict:
    """The run's own row with the status the run service decided (ctx.final_status), if any."""
    status = ctx.final_status if ctx is not None else None
    if status and row["run_id"] == ctx.run_id and row["status"] != status:
        row = {**row, "status": status, "payload": {**row["payload"], "status": status}}
    return row


async def flush_run(ctx: RunContext, session_id: str, usage_fields: dict) -> None:
    """Write the run's buffered session/run rows and its usage row in one transaction."""
    buffer: WriteBuffer | None = ctx.write_buffer
    session_dict = rows = None
    if buffer is not None:
        buffer.closed = True
        session_dict, rows = buffer.session, [_settle_status(ctx, row) for row in buffer.runs.values()]
    saved = await run_db(_flush_sync, session_dict, session_id, ctx.user_id, rows or [], usage_fields)
    if not saved:
        logger.info("run %s: session %s was deleted while the run was live; its runs were not stored, its "
                    "usage was", ctx.run_id, session_id)


def is_refusal(exc: BaseException) -> bool:
    """Whether a failed write failed on its data (retrying cannot help), not on the connection."""
    return isinstance(exc, (DataError, IntegrityError, ValueError))


async def flush_run_later(ctx: RunContext, session_id: str, usage_fields: dict) -> bool:
    """Keep retrying a failed flush (the database was down) for CIRKELLINE_FLUSH_RETRY_WINDOW.

    Every write in the flush is idempotent (upserts; the usage row is created once per run), so
    retrying after a partial success is safe. True once stored.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + settings.CIRKELLINE_FLUSH_RETRY_WINDOW
    delay = settings.CIRKELLINE_FLUSH_RETRY_INTERVAL
    while loop.time() < give_up:
        await asyncio.sleep(delay)
        try:
            await flush_run(ctx, session_id, usage_fields)
        except Exception as exc:  # still down
            logger.warning("run %s: database still unavailable (%s); retrying its write", ctx.run_id, exc)
            delay = min(delay * 2, 30.0)
            continue
        logger.info("run %s: stored after the database came back", ctx.run_id)
        return True
    logger.error("run %s: gave up storing the run and its usage after %.0f s; usage=%s", ctx.run_id,
                 settings.CIRKELLINE_FLUSH_RETRY_WINDOW, usage_fields)
    return False


# --- the agno adapter ----------------------------------------------------------------------


class DjangoAgnoDb(AsyncBaseDb):
    """agno storage over the Django ORM: sessions and runs (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(id="cirkelline-django")

    # agno asks for these when it manages its own tables; Django migrations own ours.
    async def table_exists(self, table_name: str) -> bool:
        return True

    async def get_latest_schema_version(self, table_name: str) -> str:
        return "3.0.0"

    async def upsert_schema_version(self, table_name: str, version: str) -> None:
        return None

    # -- sessions --------------------------------------------------------------------------

    async def get_session(
        self,
        session_id: str,
        session_type: SessionType | None = None,
        user_id: str | None = None,
        deserialize: bool | None = True,
        runs_limit: int | None = None,
    ) -> TeamSession | dict | None:
        ctx = current_run.get()
        if ctx is not None and ctx.prefetched_session is not None and ctx.prefetched_session[0] == session_id:
            record = ctx.prefetched_session[1]
        else:
            limit = settings.CIRKELLINE_HISTORY_RUNS if runs_limit is None else runs_limit
            try:
                record = await run_db(_load_for_run, session_id, _owner_pk(user_id), limit)
            except SessionNotFound:
                return None
        if record is None:
            return None
        if not deserialize:
            return dict(record)
        return TeamSession.from_dict(dict(record))

    async def upsert_session(self, session: Any, deserialize: bool | None = True) -> Any | None:
        session_dict = session.to_dict(include_runs=False)
        session_dict["session_type"] = "team" if isinstance(session, TeamSession) else "agent"
        owner = _owner_pk(session_dict.get("user_id"))
        if owner is None:
            raise ValueError("Cirkelline sessions always belong to a user")
        ctx = current_run.get()
        buffer = ctx.write_buffer if ctx is not None else None
        if buffer is not None and not buffer.closed:
            buffer.add_session(session_dict)
            return session if deserialize else session_dict
        saved = await self._write(session_dict, session_dict["session_id"], owner, [])
        if not saved:
            return None
        return session if deserialize else session_dict

    async def get_sessions(
        self,
        session_type: SessionType | None = None,
        user_id: str | None = None,
        component_id: str | None = None,
        session_name: str | None = None,
        start_timestamp: int | None = None,
        end_timestamp: int | None = None,
        limit: int | None = None,
        page: int | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        deserialize: bool | None = True,
        include_runs: bool = True,
    ):
        owner = _owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline lists sessions per user only: pass user_id")
        rows, total = await list_sessions(
            owner, limit=limit or 20, page=page or 1, sort_by=sort_by, sort_order=sort_order,
            session_name=session_name, component_id=component_id,
        )
        if deserialize:
            return [TeamSession.from_dict(session_record(r)) for r in rows]
        return [session_record(r) for r in rows], total

    async def rename_session(
        self,
        session_id: str,
        session_type: SessionType | None,
        session_name: str,
        user_id: str | None = None,
        deserialize: bool | None = True,
    ):
        owner = _owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline renames sessions for their owner only: pass user_id")
        record = await rename_session(owner, session_id, session_name)
        if record is None:
            return None
        return TeamSession.from_dict(record) if deserialize else record

    async def delete_session(self, session_id: str, user_id: str | None = None) -> bool:
        owner = _owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline deletes sessions for their owner only: pass user_id")
        return await delete_session(owner, session_id)

    async def delete_sessions(self, session_ids: list[str], user_id: str | None = None) -> None:
        for session_id in session_ids:
            await self.delete_session(session_id, user_id=user_id)

    # -- runs ------------------------------------------------------------------------------

    async def upsert_run(
        self,
        run: RunOutput | TeamRunOutput | dict,
        session_id: str,
        user_id: str | None = None,
        run_index: int | None = None,
    ) -> None:
        owner = _owner_pk(user_id)
        if owner is None:
            raise ValueError("Cirkelline runs always belong to a user")
        ctx = current_run.get()
        row = _settle_status(ctx, _run_row(run, run_index))
        buffer = ctx.write_buffer if ctx is not None else None
        if buffer is not None and not buffer.closed:
            buffer.add_run(row)
            return
        if not await self._write(None, session_id, owner, [row]):
            logger.info("run %s not stored: user %s has no session %s (deleted)", row["run_id"], owner, session_id)

    async def get_run(self, run_id: str, deserialize: bool | None = True):
        payload = await run_db(
            lambda: ChatRun.objects.filter(run_id=run_id).values_list("payload", flat=True).first()
        )
        if payload is None or not deserialize:
            return payload
        return TeamRunOutput.from_dict(payload) if payload.get("team_id") and not payload.get("agent_id") \
            else RunOutput.from_dict(payload)

    async def _write(self, session_dict, session_id, owner, rows) -> bool:
        ctx = current_run.get()
        try:
            return await run_db(_write_direct, session_dict, session_id, owner, rows, claim=ctx is None)
        except Exception as exc:  # agno swallows storage errors: report them to the run
            if ctx is not None:
                ctx.storage_errors.append(f"{type(exc).__name__}: {exc}")
            raise


def _unused(name: str):
    async def method(self: DjangoAgnoDb, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"DjangoAgnoDb.{name}: Cirkelline stores sessions and runs only; "
            f"{name.replace('_', ' ')} is not enabled for this team"
        )

    method.__name__ = method.__qualname__ = name
    return method


# Memories, knowledge, evals, traces, learnings and agno-side metrics are not enabled for the
# Cirkelline team; each such method says so instead of silently doing nothing.
for _name in sorted(AsyncBaseDb.__abstractmethods__ - set(vars(DjangoAgnoDb))):
    setattr(DjangoAgnoDb, _name, _unused(_name))
abc.update_abstractmethods(DjangoAgnoDb)


# --- session queries for the HTTP API (always scoped to the owner) --------------------------

SESSION_SORT_FIELDS = {"created_at": "created_at", "updated_at": "updated_at", "session_name": "session_name"}


def _list_sessions_sync(user_pk, limit, page, sort_by, sort_order, session_name, component_id):
    qs = ChatSession.objects.filter(user_id=user_pk)
    if session_name:
        qs = qs.filter(session_name__icontains=session_name)
    if component_id:
        qs = qs.filter(team_id=component_id)
    field = SESSION_SORT_FIELDS.get(sort_by or "created_at", "created_at")
    ascending = (sort_order or "desc").lower() == "asc"
    order = (field, "id") if ascending else (f"-{field}", "-id")
    total = qs.count()
    offset = (page - 1) * limit
    # Only session columns: run payloads are never loaded for a listing.
    rows = list(
        qs.order_by(*order).values(
            "session_id", "user_id", "session_type", "team_id", "session_name", "data", "created_at", "updated_at"
        )[offset : offset + limit]
    )
    return rows, total


async def list_sessions(
    user_pk: int,
    *,
    limit: int = 20,
    page: int = 1,
    sort_by: str | None = None,
    sort_order: str | None = None,
    session_name: str | None = None,
    component_id: str | None = None,
) -> tuple[list[dict], int]:
    return await run_db(_list_sessions_sync, user_pk, limit, page, sort_by, sort_order, session_name, component_id)


def _session_detail_sync(user_pk: int, session_id: str) -> dict | None:
    row = ChatSession.objects.filter(session_id=session_id, user_id=user_pk).first()
    if row is None:
        return None
    runs = list(row.runs.order_by("id").values_list("payload", flat=True))
    record = session_record(row, runs)
    session = TeamSession.from_dict(dict(record, runs=[dict(r) for r in runs]))
    record["chat_history"] = [m.to_dict() for m in session.get_chat_history()] if session else []
    return record


async def session_detail(user_pk: int, session_id: str) -> dict | None:
    """The session with all its runs (team and member), or None if it is not the user's."""
    return await run_db(_session_detail_sync, user_pk, session_id)


def _session_runs_sync(user_pk: int, session_id: str) -> list[dict] | None:
    session = ChatSession.objects.filter(session_id=session_id, user_id=user_pk).values("pk").first()
    if session is None:
        return None
    return list(ChatRun.objects.filter(session_id=session["pk"]).order_by("id").values_list("payload", flat=True))


async def session_runs(user_pk: int, session_id: str) -> list[dict] | None:
    return await run_db(_session_runs_sync, user_pk, session_id)


def _rename_sync(user_pk: int, session_id: str, name: str) -> dict | None:
    with transaction.atomic():
        row = ChatSession.objects.select_for_update().filter(session_id=session_id, user_id=user_pk).first()
        if row is None:
            return None
        data = dict(row.data or {})
        data["session_data"] = {**(data.get("session_data") or {}), "session_name": name}
        row.data = data
        row.session_name = name
        row.updated_at = timezone.now()
        row.save(update_fields=["data", "session_name", "updated_at"])
        return session_record(row)


async def rename_session(user_pk: int, session_id: str, name: str) -> dict | None:
    return await run_db(_rename_sync, user_pk, session_id, name)


def _delete_sync(user_pk: int, session_id: str) -> bool:
    deleted, _ = ChatSession.objects.filter(session_id=session_id, user_id=user_pk).delete()
    return deleted > 0


async def delete_session(user_pk: int, session_id: str) -> bool:
    return await run_db(_delete_sync, user_pk, session_id)


def _run_for_user_sync(user_pk: int, run_id: str) -> dict | None:
    return (
        ChatRun.objects.filter(run_id=run_id, user_id=user_pk)
        .values("run_id", "status", "payload", "session__session_id", "parent_run_id", "component_id")
        .first()
    )


async def run_for_user(user_pk: int, run_id: str) -> dict | None:
    """A stored run of the user's (team or member), or None."""
    return await run_db(_run_for_user_sync, user_pk, run_id)
