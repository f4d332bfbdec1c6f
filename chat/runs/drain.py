"""A graceful drain: how this process stops (SIGTERM: cirkelline_site/shutdown.py) without losing
a run or leaving a client hanging.

    begin()                  # new runs refused from now on (ServerDraining, 503); /ready says draining
    await drain(seconds)     # live runs finish for up to `seconds`; the rest are cancelled (rows
                             # written and billed, as a cancel); then the transports' own endings
                             # (the websocket closes its sockets with 1012, the SSE responses send
                             # their last frames); then the process may stop
    hurry()                  # a second signal: stop waiting for the runs, cancel them now

The transports register what they do at the end with `when_drained` (the run service does not
import the transports above it), as they register with `when_live`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chat.errors import ServerDraining
from chat.observability import lifecycle
from metrics.models import RunStatus

from .handle import RunHandle, live_run_count, live_runs

logger = logging.getLogger(__name__)

# Seconds, in all, that cancelled runs may take to write their rows and the transports to end
# their streams after the drain's time, before the process stops anyway (a database that is down:
# the rows are lost with the process, and another worker's reaper closes the runs `worker_lost`).
FINISH_SECONDS = 10.0
# Seconds a client is told to wait before retrying a refused run (a proxy retries elsewhere sooner).
RETRY_AFTER = 2

_on_drained: list[Callable[[], Awaitable[None]]] = []
_hurry: asyncio.Event | None = None


def draining() -> bool:
    return lifecycle.draining()


def refuse_if_draining() -> None:
    """Called before a run is admitted: a draining process starts none."""
    if lifecycle.draining():
        raise ServerDraining(RETRY_AFTER)


def when_drained(callback: Callable[[], Awaitable[None]]) -> None:
    """Await `callback()` once the drain's runs have ended, before the process stops."""
    if callback not in _on_drained:
        _on_drained.append(callback)


def begin() -> None:
    """Refuse new runs from now on, and say so on /ready."""
    if not lifecycle.draining():
        logger.warning("draining: no new runs; %d live run(s) may finish", live_run_count())
    lifecycle.mark_draining()


def hurry() -> None:
    """Stop waiting for live runs to finish: cancel them now (a second SIGTERM or Ctrl-C)."""
    if _hurry is not None:
        _hurry.set()


async def drain(seconds: float) -> None:
    """Let this process's live runs finish for up to `seconds`, cancel the rest (their rows
    written), then run the transports' endings. Never raises."""
    global _hurry
    begin()
    _hurry = asyncio.Event()
    try:
        loop = asyncio.get_running_loop()
        left = await _wait_for_runs(seconds, _hurry)
        finish_by = loop.time() + FINISH_SECONDS
        if left:
            logger.warning("draining: %d run(s) still live after %.0f s; cancelling them", len(left), seconds)
            for handle in left:
                handle.abort(RunStatus.CANCELLED)
            await _wait_for_runs(FINISH_SECONDS, None)
        for callback in list(_on_drained):
            try:
                await asyncio.wait_for(callback(), max(0.5, finish_by - loop.time()))
            except Exception:  # noqa: BLE001 - the process stops either way (a timeout too)
                logger.exception("draining: %r failed", callback)
        logger.warning("drained: the process may stop")
    except Exception:  # noqa: BLE001
        logger.exception("draining failed; the process stops anyway")


async def _wait_for_runs(seconds: float, hurry: asyncio.Event | None) -> list[RunHandle]:
    """Wait until no run is live here (runs admitted meanwhile count too), for up to `seconds` or
    until `hurry` is set; the runs still live."""
    from .service import starting_run_count  # service imports this module

    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    hurried = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
    try:
        while True:
            handles = live_runs()
            remaining = deadline - loop.time()
            if (not handles and not starting_run_count()) or remaining <= 0 or (hurried and hurried.done()):
                return handles
            waits = {asyncio.ensure_future(handle.wait()) for handle in handles}
            if not waits:  # runs being admitted: they register within a database round trip
                waits.add(asyncio.ensure_future(asyncio.sleep(0.05)))
            if hurried is not None:
                waits.add(hurried)
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                if waiting is not hurried and not waiting.done():
                    waiting.cancel()
    finally:
        if hurried is not None and not hurried.done():
            hurried.cancel()
