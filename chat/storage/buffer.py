"""A run's session claim and its buffered writes: everything of a run's storage but the final
transaction, which the run service composes (chat.runs.finalize) with the usage row.

Round trips per run are kept to two:
- when the run is admitted, the run service claims its session (`claim_session`): a new id is
  inserted for its owner in one atomic statement, an existing one is checked for its owner and
  loaded with its recent history, which agno's first `get_session` is then served from
  (chat.storage.agno_db). A session id is globally unique; another user's id is refused here
  (SessionNotFound), before anything runs. In the same transaction the run is put on record:
  its own row (the user's message, status RUNNING) and its usage row (status running, with the
  worker that owns it: metrics.recording.record_running);
- during the run, agno's `upsert_session` / `upsert_run` calls are buffered on the run's
  `RunContext` (chat.context.WriteBuffer); at the end `take_writes` hands them to the final
  transaction, which stores them with `persist`. Writes that arrive after that (agno persists a
  run cancelled by a disconnect from a background task) go straight to the database
  (`write_direct`). The final write only updates the claimed session: if its owner deleted it
  meanwhile, the run's rows are dropped (its usage row is still written) and the session stays
  deleted. A run the reaper closed (chat.runs.reaper) keeps the row it was closed with: the final
  write stores nothing of it, and the run upsert never updates such a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from chat.context import RunContext, UserProfile, WriteBuffer
from chat.errors import SessionNotFound
from chat.models import CANCELLED_STATUS, ChatRun
from chat.records import first_team_input, session_fields, session_record, title
from metrics.recording import record_running

from . import final_write
from .executor import run_db


def existing_session(session_id: str, user_pk: int, history_runs: int) -> tuple[dict, dict] | None:
    """The user's session `session_id` as (its agno record with its last `history_runs` top-level
    runs, what was read along with it), None if there is none; SessionNotFound if it is another's."""
    row = final_write.claimed_session(session_id)
    if row is None:
        return None
    if row.user_id != user_pk:
        raise SessionNotFound(session_id)
    about = {"last_run_status": row.last_run_status, **{c: getattr(row, c) for c in final_write.PROFILE_COLUMNS}}
    return session_record(row, ChatRun.objects.history(row.pk, history_runs)), about


def _claim_for_run(session_id: str, user_pk: int, *, is_new: bool, team_id: str, name: str, history_runs: int,
                   run_row: dict | None = None, usage: dict | None = None,
                   precheck: Callable[[], Any] | None = None) -> tuple[dict | None, dict] | Refused:
    """Claim `session_id` for `user_pk` (or load it if it is already theirs), and put the run on
    record: its own row `run_row` and its running usage row `usage` (all or nothing).

    Returns (record, about): None for a session this call created (agno starts it afresh), the
    agno session record for one the user already had; `about` holds what was read along with it
    (the owner's profile columns, and for an existing session the status of its last top-level
    run, read before this run's own row is stored). Raises SessionNotFound when it belongs to
    another user. `precheck` (sync, optional) runs first: if it returns anything but None,
    nothing is read or written and that comes back as `Refused`.
    """
    if precheck is not None:
        refusal = precheck()
        if refusal is not None:
            return Refused(refusal)
    with transaction.atomic():
        claimed = _claim(session_id, user_pk, is_new=is_new, team_id=team_id, name=name, history_runs=history_runs)
        now = timezone.now()
        if run_row is not None:
            with connection.cursor() as cursor:
                if not final_write.insert_running_run(cursor, session_id=session_id, user_pk=user_pk, row=run_row,
                                                      now=now):
                    raise SessionNotFound(session_id)  # deleted between the claim and here
        if usage is not None:
            record_running(usage)
    return claimed


def _claim(session_id: str, user_pk: int, *, is_new: bool, team_id: str, name: str,
           history_runs: int) -> tuple[dict | None, dict]:
    if not is_new:
        claimed = existing_session(session_id, user_pk, history_runs)
        if claimed is not None:
            return claimed
    with connection.cursor() as cursor:
        profile = final_write.claim_session(cursor, session_id=session_id, user_pk=user_pk, team_id=team_id,
                                            name=name, now=timezone.now())
        if profile is not None:
            return None, profile
    # Claimed by someone else between the read and the insert (or a run of the same user on
    # the same new id, which may go on in it): the owner decides.
    claimed = existing_session(session_id, user_pk, history_runs)
    if claimed is None:  # claimed, then deleted at once: nobody's now, and this run did not get it
        raise SessionNotFound(session_id)
    return claimed


@dataclass(frozen=True)
class Refused:
    """What a claim's precheck refused it with (nothing was claimed or written)."""

    reason: Any


def profile_of(about: dict) -> UserProfile:
    """The profile columns the claim read (None throughout for a user without a profile row)."""
    defaults = UserProfile()
    return UserProfile(
        display_name=about.get("display_name") or defaults.display_name,
        timezone=about.get("timezone") or defaults.timezone,
        custom_instructions=about.get("custom_instructions") or defaults.custom_instructions,
        memories_enabled=bool(about.get("memories_enabled")),
    )


async def claim_session(ctx: RunContext, session_id: str, user_pk: int, *, is_new: bool, team_id: str,
                        first_message: str, run_row: dict | None = None, usage: dict | None = None,
                        precheck: Callable[[], Any] | None = None) -> Any:
    """Claim the run's session for its owner and put the run on record, before anything runs
    (one round trip).

    A new id becomes the user's session, named after `first_message`; an existing session of
    the user's is loaded with its recent history for agno. Raises SessionNotFound when the id
    belongs to another user (session ids are globally unique). `run_row` (the run's own row as it
    starts, chat.records.running_run_row) and `usage` (its running usage row's fields) are
    written in the same transaction. The user's profile, and whether their last run in the
    session was cancelled, are read by the same statements and kept on `ctx` for the team the
    run is given.

    `precheck`: a sync check (the user's budget) run first in the same hand-off to the database
    thread, so admitting a run costs one hand-off; if it returns anything but None, nothing is
    claimed or written and that is returned. Otherwise returns None.
    """
    ctx.write_buffer = WriteBuffer()
    claimed = await run_db(_claim_for_run, session_id, user_pk, is_new=is_new, team_id=team_id,
                           name=title(first_message), history_runs=settings.CIRKELLINE_HISTORY_RUNS,
                           run_row=run_row, usage=usage, precheck=precheck)
    if isinstance(claimed, Refused):
        ctx.write_buffer = None
        return claimed.reason
    record, about = claimed
    ctx.prefetched_session = (session_id, record)
    ctx.running_row = run_row
    ctx.profile = profile_of(about)
    ctx.previous_run_cancelled = about.get("last_run_status") == CANCELLED_STATUS
    return None


def settle_status(ctx: RunContext | None, row: dict) -> dict:
    """The run's own row with the status the run service decided (ctx.final_status), if any, and
    the index of its terminal event (`last_event_index`, a streamed run's: chat.runs.eventlog)."""
    if ctx is None or row["run_id"] != ctx.run_id:
        return row
    status = ctx.final_status
    if status and row["status"] != status:
        row = {**row, "status": status, "payload": {**row["payload"], "status": status}}
    if ctx.final_event_index is not None:
        row = {**row, "payload": {**row["payload"], "last_event_index": ctx.final_event_index}}
    return row


def take_writes(ctx: RunContext) -> tuple[dict | None, list[dict]]:
    """The run's buffered session state and run rows, for its final write; later writes go direct."""
    buffer = ctx.write_buffer
    if buffer is None:  # the database refused them: the final write stores the usage row alone
        return None, []
    buffer.closed = True
    runs = buffer.runs
    if ctx.running_row is not None and ctx.run_id not in runs:
        # agno stored nothing of the run (stopped before it began, or crashed): its row as it
        # started stays, with the status the run ended with.
        runs = {**runs, ctx.run_id: ctx.running_row}
    return buffer.session, [settle_status(ctx, row) for row in runs.values()]


def settled_running_row(ctx: RunContext) -> dict | None:
    """The run's own row as it started, with its final status: what is left of a run whose rows
    the database refused (None when it has no such row)."""
    return settle_status(ctx, ctx.running_row) if ctx.running_row is not None else None


def settle_running(row: dict, user_pk: int) -> None:
    """Store `row` (settled_running_row) over the run's row while that is still as it started. Sync."""
    with connection.cursor() as cursor:
        final_write.settle_running_run(cursor, user_pk=user_pk, row=row, now=timezone.now())


def closed_by_reaper(run_id: str, user_pk: int) -> bool:
    """Whether the reaper closed `user_pk`'s run `run_id` (its stored row is final). Sync."""
    with connection.cursor() as cursor:
        return final_write.reaped_run(cursor, run_id, user_pk)


def persist(session_dict: dict | None, session_id: str, user_pk: int, rows: list[dict]) -> bool:
    """Write a session's state and its runs; False (nothing written) if the user has no such session.

    Sync, inside the caller's transaction. The session row exists: the run claimed it when it was
    admitted. If it is gone, its owner deleted it while the run was live, and it stays deleted.
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        if session_dict is not None:
            fields = session_fields(session_dict)
            session_pk = final_write.update_session(
                cursor, session_id=session_id, user_pk=user_pk, team_id=fields["team_id"],
                explicit_name=fields["explicit_name"], fallback_name=title(first_team_input(rows)),
                data=fields["data"], now=now,
            )
        else:  # runs without their session's state (agno stored them late): the state stays as it is
            session_pk = final_write.owned_session(cursor, session_id, user_pk)
        if session_pk is None:
            return False
        final_write.upsert_runs(cursor, session_pk=session_pk, user_pk=user_pk, rows=rows, now=now)
    return True


def write_direct(session_dict: dict | None, session_id: str, user_pk: int, rows: list[dict], *,
                 claim: bool) -> bool:
    """A write outside a run's final transaction (late, or outside any run), in a transaction of its own."""
    with transaction.atomic():
        if claim:  # outside a run (tooling): nothing claimed the session, so the write may create it
            with connection.cursor() as cursor:
                final_write.claim_session(cursor, session_id=session_id, user_pk=user_pk,
                                          team_id=(session_dict or {}).get("team_id") or "",
                                          name=title(first_team_input(rows)), now=timezone.now())
        return persist(session_dict, session_id, user_pk, rows)


def is_refusal(exc: BaseException) -> bool:
    """Whether a failed write failed on its data (retrying cannot help), not on the connection."""
    return isinstance(exc, (DataError, IntegrityError, ValueError))
