"""This server process's lease on its runs: a heartbeat, one database write per interval.

Every run's usage row names the worker that owns it (chat.runs.worker, from its admission on).
While the process lives, it renews its lease (metrics.leases.WorkerLease: `expires_at` =
now + CIRKELLINE_WORKER_LEASE_SECONDS) every CIRKELLINE_WORKER_HEARTBEAT_SECONDS, one upsert
whatever the number of its runs. When it dies (kill -9, out of memory, a lost host), the lease
runs out and any other process (or its own next incarnation) closes its runs (chat.runs.reaper).

The heartbeat runs on the event loop the runs run on, on purpose: a loop blocked for longer than
the lease cannot run its runs either. It is started with the process's first connection
(`chat.runs.reaper.reaping`, in the ASGI app), as the upload sweep is.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from datetime import UTC, datetime, timedelta

from django.conf import settings

from chat.storage.executor import run_db
from metrics.models import WorkerLease

from .worker import worker_id

logger = logging.getLogger(__name__)

_timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.TimerHandle | None] = (
    weakref.WeakKeyDictionary())
_beating: set[asyncio.Task] = set()
# When the running loop's heartbeat last renewed the lease (time.monotonic()).
_renewed: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, float] = weakref.WeakKeyDictionary()


async def renew() -> None:
    """Renew this process's lease now (CIRKELLINE_WORKER_LEASE_SECONDS from now)."""
    loop = asyncio.get_running_loop()
    expires = datetime.now(UTC) + timedelta(seconds=settings.CIRKELLINE_WORKER_LEASE_SECONDS)
    await run_db(WorkerLease.objects.renew, worker_id(), expires)
    last_renewed = _renewed.get(loop)
    if last_renewed is not None and time.monotonic() - last_renewed > settings.CIRKELLINE_WORKER_LEASE_SECONDS:
        # The lease ran out meanwhile (a stalled loop, an unreachable database): other processes
        # may have closed this process's runs as worker_lost; their own final writes then add
        # nothing (the first terminal write is the run's record).
        logger.error("worker %s: its lease was not renewed for %.0f s (lease %.0f s); its runs may have been "
                     "closed as worker_lost", worker_id(), time.monotonic() - last_renewed,
                     settings.CIRKELLINE_WORKER_LEASE_SECONDS)
    _renewed[loop] = time.monotonic()


def _beat(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(_renew_logged(loop), name="cirkelline-worker-heartbeat")
    _beating.add(task)
    task.add_done_callback(_beating.discard)


async def _renew_logged(loop: asyncio.AbstractEventLoop) -> None:
    try:
        await renew()
    except Exception as exc:  # noqa: BLE001 - the database is down: said, and tried again next beat
        logger.warning("worker %s: could not renew its lease (%s: %s)", worker_id(), type(exc).__name__, exc)
    finally:
        # The next beat is timed from the end of this one, so beats never pile up behind a slow database.
        if loop in _timers:
            _timers[loop] = loop.call_later(settings.CIRKELLINE_WORKER_HEARTBEAT_SECONDS, _beat, loop)


def ensure_heartbeat() -> None:
    """Renew this process's lease from the running loop on, periodically (once per loop; the first
    renewal at once)."""
    loop = asyncio.get_running_loop()
    if loop not in _timers:
        _timers[loop] = None
        _beat(loop)


def stop_heartbeat() -> None:
    """Stop the running loop's heartbeat (tests; a process that stops renewing loses its runs)."""
    timer = _timers.pop(asyncio.get_running_loop(), None)
    if timer is not None:
        timer.cancel()
