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
from typing import Any

from agno.db.base import AsyncBaseDb, SessionType
from agno.run.agent import RunOutput
from agno.run.team import TeamRunOutput
from agno.session import TeamSession
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from metrics.recording import record_run_usage

from . import sqlwrite
from .context import RunContext, WriteBuffer, current_run
from .db import run_db
from .errors import SessionNotFound
from .models import ChatRun, ChatSession
from .records import first_team_input, owner_pk, run_row, session_fields, session_record, title

logger = logging.getLogger(__name__)


def _claim_for_run(session_id: str, user_pk: int, *, is_new: bool, team_id: str, name: str,
                   history_runs: int) -> dict | None:
    """Claim `session_id` for `user_pk`, or load it if it is already theirs.

    None for a session this call created (agno starts it afresh), the agno session record for
    one the user already had. Raises SessionNotFound when it belongs to another user.
    """
    if not is_new:
        record = ChatSession.objects.for_run(session_id, user_pk, history_runs)
        if record is not None:
            return record
    with connection.cursor() as cursor:
        if sqlwrite.claim_session(cursor, session_id=session_id, user_pk=user_pk, team_id=team_id, name=name,
                                  now=timezone.now()):
            return None
    # Claimed by someone else between the read and the insert (or a run of the same user on
    # the same new id, which may go on in it): the owner decides.
    record = ChatSession.objects.for_run(session_id, user_pk, history_runs)
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
            fields = session_fields(session_dict)
            session_pk = sqlwrite.update_session(
                cursor, session_id=session_id, user_pk=user_pk, team_id=fields["team_id"],
                explicit_name=fields["explicit_name"], fallback_name=title(first_team_input(rows)),
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
                                       name=title(first_team_input(rows)), now=timezone.now())
        return _persist(session_dict, session_id, user_pk, rows)


# --- the run's write buffer ----------------------------------------------------------------


async def claim_session(ctx: RunContext, session_id: str, user_pk: int, *, is_new: bool, team_id: str,
                        first_message: str) -> None:
    """Claim the run's session for its owner, before anything runs (one round trip).

    A new id becomes the user's session, named after `first_message`; an existing session of
    the user's is loaded with its recent history for agno. Raises SessionNotFound when the id
    belongs to another user (session ids are globally unique).
    """
    ctx.write_buffer = WriteBuffer()
    record = await run_db(_claim_for_run, session_id, user_pk, is_new=is_new, team_id=team_id,
                          name=title(first_message), history_runs=settings.CIRKELLINE_HISTORY_RUNS)
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
                record = await run_db(ChatSession.objects.for_run, session_id, owner_pk(user_id), limit)
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
        owner = owner_pk(session_dict.get("user_id"))
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
        owner = owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline lists sessions per user only: pass user_id")
        rows, total = await run_db(
            ChatSession.objects.page, owner, limit=limit or 20, page=page or 1, sort_by=sort_by,
            sort_order=sort_order, session_name=session_name, component_id=component_id,
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
        owner = owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline renames sessions for their owner only: pass user_id")
        record = await run_db(ChatSession.objects.rename, owner, session_id, session_name)
        if record is None:
            return None
        return TeamSession.from_dict(record) if deserialize else record

    async def delete_session(self, session_id: str, user_id: str | None = None) -> bool:
        owner = owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline deletes sessions for their owner only: pass user_id")
        return await run_db(ChatSession.objects.remove, owner, session_id)

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
        owner = owner_pk(user_id)
        if owner is None:
            raise ValueError("Cirkelline runs always belong to a user")
        ctx = current_run.get()
        row = _settle_status(ctx, run_row(run, run_index))
        buffer = ctx.write_buffer if ctx is not None else None
        if buffer is not None and not buffer.closed:
            buffer.add_run(row)
            return
        if not await self._write(None, session_id, owner, [row]):
            logger.info("run %s not stored: user %s has no session %s (deleted)", row["run_id"], owner, session_id)

    async def get_run(self, run_id: str, deserialize: bool | None = True):
        payload = await run_db(ChatRun.objects.payload, run_id)
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


# --- a session with its chat history, for the HTTP API -------------------------------------


def session_with_history(user_pk: int, session_id: str) -> dict | None:
    """The user's session with all its runs and agno's chat history of it, or None. Sync (ORM)."""
    record = ChatSession.objects.detail(user_pk, session_id)
    if record is None:
        return None
    session = TeamSession.from_dict(dict(record, runs=[dict(r) for r in record["runs"]]))
    record["chat_history"] = [m.to_dict() for m in session.get_chat_history()] if session else []
    return record
