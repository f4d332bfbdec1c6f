"""Closing the runs of a server process that died: the reaper every live process runs.

A run is on record from its admission (its usage row `running`, naming its worker; its own row
RUNNING with the user's message). If its worker dies mid-run (kill -9, out of memory, a lost
host), nothing in that process can end it: its lease (chat.runs.lease) runs out instead, and
every live process, when it starts (its first connection) and every
CIRKELLINE_REAPER_INTERVAL_SECONDS after, closes the runs whose worker's lease has expired
(metrics.leases.orphaned):

- the usage row: status `error`, `error_type` `worker_lost`, billed for the provider calls the
  run had completed (its live ledger, written by the worker as calls completed: chat.runs.liveledger),
  by a conditional UPDATE (`... WHERE status = 'running'`): of two processes closing one run, or
  of a closer and the run's own late final write, exactly one wins;
- the run's own row, in the same transaction: status ERROR with the user's message and, as its
  answer, INTERRUPTED, so the session shows the message and says what became of it; the row is
  marked closed by the reaper (chat.storage.final_write.CLOSED_BY), which makes it final: if the
  worker was alive after all (its event loop stalled past its lease), its late final write
  stores nothing of the run (chat.runs.finalize) and cannot replace this row;
- its admission slot (Redis) is freed at once: the user is not refused for a run that is over;
- its event log gets a terminal `TeamRunError` (`worker_lost`), so a watching socket or a resumed
  stream on any worker hears the run ended instead of silence.

A cancel of a run whose worker is gone closes it the same way at once (`close_if_orphaned`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from chat.agents.runtime import error_event
from chat.models import RUNNING_STATUS, ChatRun
from chat.observability import hooks
from chat.storage.executor import run_db
from chat.storage.final_write import CLOSED_BY, REAPER
from chat.storage.paused import expire_stale
from metrics.leases import orphaned
from metrics.models import TOKEN_FIELDS, RunStatus, RunUsage, WorkerLease
from metrics.recording import close_running

from . import eventlog, lease
from .admission import LEASE_GRACE, coordinator
from .outcome import ERROR_MESSAGES, LOST_EVENT_INDEX, WORKER_LOST
from .teams import team_name
from .worker import worker_id

logger = logging.getLogger(__name__)

# The stored answer of a run whose worker died (the user's message stays above it).
INTERRUPTED = ERROR_MESSAGES[WORKER_LOST]
# Leases expired this long ago, of workers that own no running row any more, are deleted.
FORGET_LEASES_AFTER = 3600.0
_ORPHAN_FIELDS = ("run_id", "account_id", "session_id", "team_id", "worker", "streamed", "started_at")


def _unleased_after() -> dict[bool, float]:
    """How old a run of a worker with no lease at all must be to be closed: its deadline, the
    admission grace and the window its final write may be retried in (it could be alive)."""
    extra = LEASE_GRACE + settings.CIRKELLINE_FLUSH_RETRY_WINDOW
    return {False: settings.CIRKELLINE_RUN_TIMEOUT + extra, True: settings.CIRKELLINE_DEEP_RESEARCH_TIMEOUT + extra}


def _orphans(run_id: str | None = None, user_id: int | None = None) -> list[dict]:
    """The running rows whose worker is gone (all, `run_id`'s, or `user_id`'s). Sync."""
    usage = RunUsage.objects.all() if run_id is None else RunUsage.objects.filter(run_id=run_id)
    if user_id is not None:
        usage = usage.filter(account_id=user_id)
    # Never this process's own runs: it is alive, however late its heartbeat (a slow database, a
    # busy host); a lease of its own that ran out is for the others to act on.
    usage = usage.exclude(worker=worker_id())
    rows = orphaned(usage, now=datetime.now(UTC), unleased_after=_unleased_after())
    return list(rows.values(*_ORPHAN_FIELDS).order_by("started_at"))


def _close(run_id: str, worker: str, now: datetime) -> dict | None:
    """Close a running run of a dead worker: its usage row and its own row, in one transaction.
    The closed usage row's fields, or None when the run was not running any more. Sync."""
    with transaction.atomic():
        closed = close_running(run_id, status=RunStatus.ERROR, error_type=WORKER_LOST, finished_at=now,
                               error_message=f"{INTERRUPTED} [worker {worker or '?'} stopped renewing its lease]")
        if closed is None:
            return None
        row = ChatRun.objects.filter(run_id=run_id, status=RUNNING_STATUS).values("payload").first()
        if row is not None:
            payload = {**(row["payload"] or {}), "status": "ERROR", "content": INTERRUPTED, CLOSED_BY: REAPER}
            ChatRun.objects.filter(run_id=run_id, status=RUNNING_STATUS).update(
                status="ERROR", payload=payload, updated_at=now)
    return closed


async def close_orphan(orphan: dict) -> bool:
    """Close one run whose worker is gone (a row of `_orphans`); False if it was closed already."""
    run_id = orphan["run_id"]
    closed = await run_db(_close, run_id, orphan["worker"], datetime.now(UTC))
    if closed is None:
        return False  # its worker's late final write, or another process, closed it first
    logger.warning("run %s: its worker %s is gone; closed as %s (tokens %s, cost %s)", run_id, orphan["worker"],
                   WORKER_LOST, closed.get("total_tokens"), closed.get("cost"))
    hooks.run_finished(closed, cost=closed.get("cost"))
    user_id = orphan["account_id"]
    if user_id is not None:
        await coordinator().release(user_id=user_id, run_id=run_id)
    if orphan["streamed"]:
        team_id = orphan["team_id"]
        terminal = error_event(run_id=run_id, session_id=orphan["session_id"], team_id=team_id,
                               team_name=team_name(team_id), content=INTERRUPTED, error_type=WORKER_LOST)
        summary = {"status": RunStatus.ERROR, "error_type": WORKER_LOST, "detail": INTERRUPTED,
                   "retry_after": None, "saved": True,
                   "tokens": {name: int(closed.get(name) or 0) for name in TOKEN_FIELDS},
                   "duration_ms": closed.get("duration_ms"),
                   "cost": None if closed.get("cost") is None else str(closed["cost"])}
        try:
            await eventlog.close(run_id, terminal, summary=summary, index=LOST_EVENT_INDEX)
        except Exception as exc:  # noqa: BLE001 - Redis down: the log expires by itself; the rows are written
            logger.warning("run %s: could not end its event log (%s: %s)", run_id, type(exc).__name__, exc)
    return True


async def sweep() -> list[str]:
    """Close every run whose worker is gone, now; the ids of the runs this process closed."""
    closed = []
    for orphan in await run_db(_orphans):
        try:
            if await close_orphan(orphan):
                closed.append(orphan["run_id"])
        except Exception:  # one run's failure must not keep the others running
            logger.exception("run %s: could not close it for its lost worker", orphan["run_id"])
    await run_db(WorkerLease.objects.forget_expired, datetime.now(UTC) - timedelta(seconds=FORGET_LEASES_AFTER))
    # Paused runs nobody answered within CIRKELLINE_PAUSE_TTL_SECONDS expire here too (chat.runs.pause).
    await run_db(expire_stale, datetime.now(UTC), settings.CIRKELLINE_PAUSE_TTL_SECONDS)
    return closed


async def close_if_orphaned(run_id: str) -> bool:
    """Close `run_id` now if its worker is gone (a cancel of it); True if it was (by this call or
    another process: it is not running any more)."""
    found = await run_db(_orphans, run_id)
    if found:
        await close_orphan(found[0])
        return True
    # Ended meanwhile (by its worker, or closed by another process's sweep), or its worker lives.
    return not await run_db(RunUsage.objects.filter(run_id=run_id, status=RunStatus.RUNNING).exists)


async def close_orphans_of(user_id: int) -> int:
    """Close the user's runs whose worker is gone, now (a run of theirs was refused admission:
    their slots may be held by such runs); how many this call closed."""
    closed = 0
    for orphan in await run_db(_orphans, None, user_id):
        closed += await close_orphan(orphan)
    return closed


# --- the periodic sweep of each server process -----------------------------------------------

_timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.TimerHandle | None] = (
    weakref.WeakKeyDictionary())
_sweeping: set[asyncio.Task] = set()


def _tick(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(_sweep_logged(loop), name="cirkelline-reaper")
    _sweeping.add(task)
    task.add_done_callback(_sweeping.discard)


async def _sweep_logged(loop: asyncio.AbstractEventLoop) -> None:
    try:
        await sweep()
    except Exception as exc:  # noqa: BLE001 - the database is down: said, and tried again next time
        logger.warning("could not look for runs of lost workers (%s: %s)", type(exc).__name__, exc)
    finally:
        if loop in _timers:  # jittered, so processes started together spread their sweeps
            _timers[loop] = loop.call_later(settings.CIRKELLINE_REAPER_INTERVAL_SECONDS * random.uniform(0.8, 1.2),
                                            _tick, loop)


def ensure_reaping() -> None:
    """Renew this process's lease and close lost workers' runs from the running loop on: the first
    sweep at once (a process that starts closes its previous incarnation's runs), then periodically."""
    lease.ensure_heartbeat()
    loop = asyncio.get_running_loop()
    if loop not in _timers:
        _timers[loop] = None
        _tick(loop)


def stop_reaping() -> None:
    """Stop the running loop's heartbeat and sweeps (tests)."""
    lease.stop_heartbeat()
    timer = _timers.pop(asyncio.get_running_loop(), None)
    if timer is not None:
        timer.cancel()


def reaping(app: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap an ASGI app so the process serving it keeps its lease and closes lost workers' runs
    from its first connection on."""

    async def app_that_reaps(scope, receive, send):
        ensure_reaping()
        return await app(scope, receive, send)

    return app_that_reaps
