"""A run's session claim and its buffered writes: everything of a run's storage but the final
transaction, which the run service composes (chat.runs.finalize) with the usage row.

Round trips per run are kept to two:
- when the run is admitted, the run service claims its session (`claim_session`): a new id is
  inserted for its owner in one atomic statement, an existing one is checked for its owner and
  loaded with its recent history, which agno's first `get_session` is then served from
  (chat.storage.agno_db). A session id is globally unique; another user's id is refused here
  (SessionNotFound), before anything runs;
- during the run, agno's `upsert_session` / `upsert_run` calls are buffered on the run's
  `RunContext` (chat.context.WriteBuffer); at the end `take_writes` hands them to the final
  transaction, which stores them with `persist`. Writes that arrive after that (agno persists a
  run cancelled by a disconnect from a background task) go straight to the database
  (`write_direct`). The final write only updates the claimed session: if its owner deleted it
  meanwhile, the run's rows are dropped (its usage row is still written) and the session stays
  deleted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from chat.context import RunContext, WriteBuffer
from chat.errors import SessionNotFound
from chat.models import ChatSession
from chat.records import first_team_input, session_fields, title

from . import final_write
from .executor import run_db


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
        if final_write.claim_session(cursor, session_id=session_id, user_pk=user_pk, team_id=team_id, name=name,
                                     now=timezone.now()):
            return None
    # Claimed by someone else between the read and the insert (or a run of the same user on
    # the same new id, which may go on in it): the owner decides.
    record = ChatSession.objects.for_run(session_id, user_pk, history_runs)
    if record is None:  # claimed, then deleted at once: nobody's now, and this run did not get it
        raise SessionNotFound(session_id)
    return record


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


def settle_status(ctx: RunContext | None, row: dict) -> dict:
    """The run's own row with the status the run service decided (ctx.final_status), if any."""
    status = ctx.final_status if ctx is not None else None
    if status and row["run_id"] == ctx.run_id and row["status"] != status:
        row = {**row, "status": status, "payload": {**row["payload"], "status": status}}
    return row


def take_writes(ctx: RunContext) -> tuple[dict | None, list[dict]]:
    """The run's buffered session state and run rows, for its final write; later writes go direct."""
    buffer = ctx.write_buffer
    if buffer is None:  # the database refused them: the final write stores the usage row alone
        return None, []
    buffer.closed = True
    return buffer.session, [settle_status(ctx, row) for row in buffer.runs.values()]


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
