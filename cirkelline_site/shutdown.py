"""SIGTERM (and Ctrl-C) under Daphne: drain first (chat.runs.drain), then let Daphne stop.

Daphne runs on Twisted's reactor, which installs its own handlers for SIGTERM and SIGINT when it
starts: they call `reactor.stop()` at once. Stopping fires the reactor's "before shutdown"
triggers, among them Daphne's `kill_all_applications`, which cancels every request and socket in
flight (their runs would lose their streams) without waiting. A trigger of ours returning a
Deferred could delay the stop, but not Daphne's trigger, which runs beside it. So the handlers are
replaced instead, once the reactor runs (Twisted installs its own just before): a first signal
starts the drain on the event loop and, when it is done, calls `reactor.stop()` as Twisted would
have; a second one cuts the wait for live runs short (they are cancelled, still stored and
billed), and a third stops at once.

Only Daphne's own process is changed, and only when the handlers are Twisted's (a server started
without signal handlers, as the test live servers of Channels are, keeps its own behaviour).
tests/site/test_library_drift.py pins the Twisted and Daphne behaviour this relies on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from django.conf import settings

logger = logging.getLogger(__name__)

_signals = 0
_task: asyncio.Task | None = None


def install() -> None:
    """Replace Twisted's SIGTERM/SIGINT handlers once the reactor runs (under Daphne only)."""
    if "daphne.server" not in sys.modules:
        return  # not served by Daphne (uvicorn, tests): nothing to correct
    from twisted.internet import reactor

    reactor.callWhenRunning(_replace_handlers, reactor)


def _replace_handlers(reactor) -> None:
    for signum, twisted_handler in ((signal.SIGTERM, reactor.sigTerm), (signal.SIGINT, reactor.sigInt)):
        if signal.getsignal(signum) == twisted_handler:
            signal.signal(signum, lambda number, frame: reactor.callFromThread(_on_signal, reactor, number))


def _on_signal(reactor, signum: int) -> None:
    """On the reactor's (and asyncio's) thread: the first signal drains, the next hurry, then stop."""
    global _signals, _task
    from chat.runs import drain

    _signals += 1
    name = signal.Signals(signum).name
    if _signals == 1:
        seconds = settings.CIRKELLINE_DRAIN_SECONDS
        logger.warning("%s: draining (runs may finish for %.0f s), then stopping", name, seconds)
        drain.begin()  # /ready and new runs refused from this moment, before the task's first step
        _task = asyncio.get_event_loop().create_task(drain.drain(seconds), name="cirkelline-drain")
        _task.add_done_callback(lambda _: reactor.stop())
    elif _signals == 2:
        logger.warning("%s again: cancelling the live runs now", name)
        drain.hurry()
    else:
        logger.warning("%s a third time: stopping without waiting", name)
        reactor.stop()
