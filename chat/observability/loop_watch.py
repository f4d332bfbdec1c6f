"""The event loop watched in production: its lag into a histogram, a stall logged with its stack.

Heartbeat (on the loop): a timer callback re-armed every `INTERVAL` seconds; how late it runs
is the loop lag, the time other work kept the loop from it. A timer callback rather than a task
that sleeps: no task and no coroutine step per beat. A block of the loop shorter than the
interval is seen only if a beat falls due during it, like any sampling monitor; every stall
longer than the interval is seen.

Stall watchdog (a daemon thread): while the loop is blocked nothing on it runs, the heartbeat
included, and once something on the loop could look, the culprit has returned and its stack
is gone. So a thread watches the heartbeat's timestamp, and when the next beat is overdue by
more than the stall threshold (CIRKELLINE_LOOP_STALL_WARN_MS) it reads the loop thread's
current frame with `sys._current_frames()` (what `faulthandler.dump_traceback_later` does in
C) and logs ONE warning with that stack: the function holding the loop. It warns again only
after a heartbeat has run. It sleeps until the earliest moment a stall could be due, so a
healthy loop wakes it about once per threshold.

Why not a library: asyncio's debug mode (`slow_callback_duration`) and aiodebug's slow-callback
logger time every callback (a cost on every step of every run) and report after the fact,
without the blocked stack; aiodebug's hang inspector writes stack files rather than log lines,
and faulthandler writes to a file descriptor, outside logging and its request ids.

The benchmark's per-process files (CIRKELLINE_STATS_DIR, chat/loopstats.py) stay a separate,
benchmark-only tool.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from . import prom

logger = logging.getLogger(__name__)

INTERVAL = 0.1  # seconds between heartbeats
SAMPLE_EVERY = 10  # heartbeats between two refreshes of the sampled gauges (prom.sample)
STACK_LIMIT = 30  # innermost frames logged with a stall


class LoopWatch:
    """Heartbeat + stall watchdog of one event loop. `start()` from a coroutine on that loop."""

    def __init__(self, stall_seconds: float, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.stall_seconds = stall_seconds
        self.beat_at = time.monotonic()  # when the last heartbeat ran
        self.stalls = 0
        self._due = self.beat_at + interval
        self._beats = 0
        self._thread_id: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._warned_for = -1.0  # beat_at of the stall already reported

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self.beat_at = time.monotonic()
        self._due = self.beat_at + self.interval
        self._timer = loop.call_later(self.interval, self._beat)
        if self.stall_seconds > 0:
            # The thread holds the loop weakly: a closed or collected loop ends it.
            threading.Thread(target=self._watch, args=(weakref.ref(loop),), name="cirkelline-loop-watch",
                             daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()

    def _beat(self) -> None:
        now = time.monotonic()
        lag = max(0.0, now - self._due)
        self.beat_at = now
        self._due = now + self.interval
        prom.observe_loop_lag(lag)
        self._beats += 1
        if self._beats % SAMPLE_EVERY == 0:
            prom.sample()
        if not self._stop.is_set():
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._beat)

    def _watch(self, loop_ref: weakref.ref) -> None:
        while not self._stop.is_set():
            loop = loop_ref()
            if loop is None or loop.is_closed():
                return
            beat_at = self.beat_at
            overdue_at = beat_at + self.interval + self.stall_seconds
            del loop  # never keep the loop alive from this thread
            wait = overdue_at - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            loop = loop_ref()
            if loop is None:
                return
            if not loop.is_running():
                # A loop that was stopped (not blocked) is late when it resumes: not a stall.
                self._warned_for = beat_at
            elif self.beat_at == beat_at and self._warned_for != beat_at:
                self._warned_for = beat_at
                self._report(time.monotonic() - beat_at - self.interval)
            del loop
            self._stop.wait(min(self.stall_seconds, 1.0))

    def _report(self, blocked_for: float) -> None:
        frame = sys._current_frames().get(self._thread_id)
        stack = "".join(traceback.format_stack(frame, limit=STACK_LIMIT)) if frame is not None else "(no frame)\n"
        del frame
        self.stalls += 1
        prom.loop_stalled()
        logger.warning("event loop blocked for %.0f ms so far (stall threshold %.0f ms); it is running:\n%s",
                       blocked_for * 1000, self.stall_seconds * 1000, stack.rstrip("\n"),
                       extra={"blocked_ms": round(blocked_for * 1000), "kv": ("blocked_ms",)})


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopWatch] = weakref.WeakKeyDictionary()


def ensure_watched(stall_seconds: float) -> LoopWatch:
    """The running loop's watch, started on first use (once per loop)."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = LoopWatch(stall_seconds)
        watch.start()
    return watch


def watched(app: Callable[..., Awaitable[Any]], stall_seconds: float) -> Callable[..., Awaitable[Any]]:
    """Wrap an ASGI app so the loop serving it is watched from its first connection on."""

    async def app_on_a_watched_loop(scope, receive, send):
        ensure_watched(stall_seconds)
        return await app(scope, receive, send)

    return app_on_a_watched_loop
