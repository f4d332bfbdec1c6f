"""Finishing a run: its one final transaction (session, runs and usage row), retried later when the
database is down, and the end of its event stream.

The run service composes the final transaction itself: agno's buffered session and run rows
(chat.storage.buffer) and the usage row (metrics.recording) in one database transaction, so a run
is stored and billed together or, if the database refuses its rows, billed alone. Only after that
is its terminal event published, so a client that sees `TeamRunCompleted` can read the run back.

A run the reaper closed meanwhile (this process's lease ran out while the run went on: its event
loop stalled) keeps what the reaper stored and billed: its final write stores nothing, and its
outcome becomes the reaper's (`worker_lost`), so every reader hears one ending.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from chat.context import RunContext, current_run
from chat.observability import hooks
from chat.observability.request_id import current_request_id
from chat.storage import buffer
from chat.storage.executor import run_db
from metrics.models import RunStatus
from metrics.recording import record_terminal

from .admission import coordinator
from .handle import _END, RunHandle, unregister
from .naming import schedule_naming
from .outcome import ERROR_MESSAGES, WORKER_LOST, outcome, terminal_event, usage_fields
from .result import AGNO_STATUS

logger = logging.getLogger(__name__)

# How long finalisation may wait for agno's own cleanup tasks and for the database.
CLEANUP_GRACE = 2.0
FLUSH_TIMEOUT = 15.0

# Final writes being retried in the background (the database was down), kept referenced.
_background: set[asyncio.Task] = set()


def retrying_writes() -> int:
    """Runs whose final write is being retried in the background, in this process."""
    return len(_background)


def _retry_later(handle: RunHandle, usage: tuple[dict, list[dict], list[dict]]) -> None:
    """Store a run whose final write failed once the database is back (never tied to a request)."""
    token = current_run.set(None)  # not one of the run's tasks: cancelling the run must not stop it
    try:
        task = asyncio.get_running_loop().create_task(flush_run_later(handle.ctx, handle.session_id, usage))
    finally:
        current_run.reset(token)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _to_completion(coro):
    """Await `coro` to its end even if this task is cancelled meanwhile (finalisation must finish)."""
    task = asyncio.ensure_future(coro)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()
            asyncio.current_task().uncancel()


def ledger(handle: RunHandle) -> list[dict[str, Any]]:
    """The run's calls per agent x model (leader, each member, nested teams), as
    metrics.recording.record_run prices them, with the cost a provider reported beside ours."""
    reported = handle.ctx.provider_costs
    return [
        {"agent": entry.agent, "model": entry.model, "provider": entry.provider, "calls": entry.calls,
         "tokens": entry.tokens, "estimated_tokens": entry.estimated_tokens, "provider_cost": reported.get(key)}
        for key, entry in handle.account.by_model.items()
    ]


def _final_write(session_dict: dict | None, session_id: str, user_pk: int, rows: list[dict],
                 usage: tuple[dict, list[dict], list[dict]], lone_row: dict | None = None,
                 ) -> tuple[bool, Any, bool]:
    """The run's one final transaction: its usage row with its priced ledger and its delegation
    failures (metrics.recording.record_terminal), then its session and runs (chat.storage.buffer).

    `usage`: (usage fields, ledger, failures). `lone_row`: when the database refused the run's
    rows, its own row as it started, with its final status, to store instead (it was storable
    once). Returns (False if the session was deleted while the run was live, the run's cost or
    None when unpriced, True if the reaper had closed the run: then nothing was written). Sync.

    The usage row comes first: its conditional UPDATE (`... WHERE status = 'running'`) is what
    decides a race with the reaper's close (chat.runs.reaper), which ends the usage row and then
    the run's own row in one transaction, in that order too (the same lock order on PostgreSQL:
    no deadlock). If the close won, the run's stored state is the reaper's: its session and runs
    are not written, so the session keeps the "interrupted" answer the run was billed and
    reported with.
    """
    run_id = usage[0]["run_id"]
    with transaction.atomic():
        first, cost = record_terminal(*usage)
        if not first and buffer.closed_by_reaper(run_id, user_pk):
            return True, None, True
        saved = buffer.persist(session_dict, session_id, user_pk, rows) if (session_dict or rows) else True
        if lone_row is not None:
            buffer.settle_running(lone_row, user_pk)
    return saved, cost, False


async def flush_run(ctx: RunContext, session_id: str, usage: tuple[dict, list[dict], list[dict]]) -> Any:
    """Write the run's buffered session/run rows and its usage in one transaction; the run's cost."""
    session_dict, rows = buffer.take_writes(ctx)
    lone = buffer.settled_running_row(ctx) if ctx.write_buffer is None else None
    saved, cost, reaped = await run_db(_final_write, session_dict, session_id, ctx.user_id, rows, usage, lone)
    if reaped:
        ctx.closed_by_reaper = True
        logger.warning("run %s: closed as %s by another process while it went on (this process's lease ran out); "
                       "its answer is not stored, the session keeps the interrupted one", ctx.run_id, WORKER_LOST)
    elif not saved:
        logger.info("run %s: session %s was deleted while the run was live; its runs were not stored, its "
                    "usage was", ctx.run_id, session_id)
    return cost


async def flush_run_later(ctx: RunContext, session_id: str, usage: tuple[dict, list[dict], list[dict]]) -> bool:
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
            await flush_run(ctx, session_id, usage)
        except Exception as exc:  # still down
            logger.warning("run %s: database still unavailable (%s); retrying its write", ctx.run_id, exc)
            delay = min(delay * 2, 30.0)
            continue
        logger.info("run %s: stored after the database came back", ctx.run_id)
        return True
    logger.error("run %s: gave up storing the run and its usage after %.0f s; usage=%s", ctx.run_id,
                 settings.CIRKELLINE_FLUSH_RETRY_WINDOW, usage[0])
    return False


STORAGE_MESSAGES = {
    "unavailable": ("The answer was generated but could not be saved yet (the database is unavailable); it "
                    "will be added to the session history once the database is back."),
    "refused": ("The answer was generated but the database refused to store it, so it is not in the session "
                "history; its usage was recorded."),
}


async def _flush(handle: RunHandle, usage: tuple[dict, list[dict], list[dict]]) -> Exception | None:
    """Write the run's buffered rows and its usage in one transaction (its cost on the handle); the
    error if it failed."""
    try:
        handle.cost = await _to_completion(asyncio.wait_for(flush_run(handle.ctx, handle.session_id, usage),
                                                            FLUSH_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - the database is down, timed out, or refused the data
        handle.ctx.storage_errors.append(f"{type(exc).__name__}: {exc}")
        return exc
    return None


async def _store(handle: RunHandle, usage: tuple[dict, list[dict], list[dict]]) -> bool:
    """Store the run. True if the database refused its rows (and only its usage row was written).

    The database down or slow: everything is retried in the background until it is back. The
    database refusing the data (it should not, see chat.payload.storable): retrying cannot help,
    so the usage row is written alone and the run is billed all the same.
    """
    refused = False
    failure = await _flush(handle, usage)
    if failure is not None and buffer.is_refusal(failure):
        logger.error("run %s: the database refused its session/run rows (%s: %s); storing its usage alone",
                     handle.run_id, type(failure).__name__, failure)
        handle.ctx.write_buffer = None  # what was refused; the usage row has only numbers and short strings
        if handle.ctx.running_row is not None:  # the user's message stays, saying why there is no answer
            row = handle.ctx.running_row
            handle.ctx.running_row = {**row, "payload": {**row["payload"], "content": STORAGE_MESSAGES["refused"]}}
        refused, failure = True, await _flush(handle, usage)
    if failure is not None:
        logger.error("run %s: could not store %s (%s: %s); retrying in the background", handle.run_id,
                     "its usage" if refused else "the run and its usage", type(failure).__name__, failure)
        _retry_later(handle, usage)
    return refused


async def finalize(handle: RunHandle, output: Any, failure: BaseException | None, stream: Any) -> None:
    """End the run: decide its outcome, write its rows and usage, free its slot, publish its terminal event."""
    result = outcome(handle, output, failure)
    try:
        if stream is not None and failure is not None:
            # A crash left agno's generator suspended: close it so its cleanup runs.
            try:
                await asyncio.wait_for(stream.aclose(), CLEANUP_GRACE)
            except BaseException:  # noqa: BLE001 - best effort on an already failed run
                pass
        # agno persists an aborted run from a background task; let it land in this run's write.
        pending = [t for t in (handle.ctx.tasks or ()) if not t.done() and t is not asyncio.current_task()]
        if pending:
            await _to_completion(asyncio.wait(pending, timeout=CLEANUP_GRACE))
        # The provider calls cut off mid-stream (the retry layer saw them end; agno reports nothing).
        handle.account.add_cut_calls(handle.ctx.cut_calls)
        usage = usage_fields(handle, result, datetime.now(UTC))
        usage["request_id"] = current_request_id() or ""
        # The stored run says what the usage row says (agno stops a timed-out run as cancelled).
        handle.ctx.final_status = AGNO_STATUS[result.status]
        failures = handle.monitor.failures()  # chat.runs.monitor; announces the ones not yet announced
        if handle._log_writer is not None:
            # Nothing is published from here on but the terminal event: this will be its index.
            handle.ctx.final_event_index = handle.event_count
        refused = await _store(handle, (usage, ledger(handle), failures))
        if handle.ctx.closed_by_reaper:
            # What the reaper closed the run with is its outcome (its rows, its bill, its event
            # log's end, and its run_finished): this process's clients hear the same.
            result.status, result.error_type = RunStatus.ERROR, WORKER_LOST
            result.message, result.retry_after = ERROR_MESSAGES[WORKER_LOST], None
        else:
            hooks.run_finished(usage, cost=handle.cost, message=handle.request.message)
        if handle.ctx.storage_errors:
            result.storage_failed, result.storage_refused = True, refused
            if result.status == RunStatus.COMPLETED:
                result.error_type = "internal"
                result.message = STORAGE_MESSAGES["refused" if refused else "unavailable"]
        result.terminal = terminal_event(handle, result)
    except BaseException as exc:  # noqa: BLE001 - never leave a client without a terminal event
        logger.exception("run %s: finalisation failed", handle.run_id)
        result.status, result.error_type, result.message = RunStatus.ERROR, "internal", ERROR_MESSAGES["internal"]
        result.terminal = terminal_event(handle, result)
        if not isinstance(exc, Exception):
            raise
    finally:
        handle.result = result
        # Free the run's admission slot before the client hears the run ended, so its next
        # message is never refused for a run that is already over.
        unregister(handle)
        try:
            await _to_completion(coordinator().release(user_id=handle.user_id, run_id=handle.run_id))
        finally:
            if result.terminal is not None:
                handle._publish(result.terminal)
            handle._publish(_END)
            handle._done.set()
            # The session's first answer: its title from the model, in a task of its own (chat.runs.naming).
            schedule_naming(handle)
