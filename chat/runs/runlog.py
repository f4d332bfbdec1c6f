"""One run's event log in this process's memory: its entries, its end, and readers following it.

The same class holds the log of a run this process executes (written by chat.runs.eventlog's
writer) and the mirror of another process's log (written by chat.runs.eventlog_redis from the
run's Redis Stream); readers (SSE, websocket pumps, resumed streams) follow either alike, with
the SSE heartbeat's quiet timer (`follow(idle=...)`). Kept apart from the writer and the registry
of logs because both sides of Redis build on it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
from collections.abc import AsyncIterator

from django.conf import settings

from .logentries import Entry

# Callbacks and tasks of the log belong to no run: cancelling a run must not cancel its log's writes.
NO_RUN = contextvars.Context()


def _index(entry: Entry) -> int:
    return entry[0]


class OwnedByMeta:
    """The owner of a run's log from its record (`meta`): who may read it, and of which session."""

    meta: dict

    @property
    def user_id(self) -> int:
        return int(self.meta["user_id"])

    @property
    def session_id(self) -> str:
        return self.meta["session_id"]


class RunLog(OwnedByMeta):
    """One run's log in this process: the producer's own, or a mirror of another process's."""

    def __init__(self, run_id: str, meta: dict):
        self.run_id = run_id
        # Who and what: user_id, session_id, team_id, message, deep_research, files, started_at.
        self.meta = meta
        self.entries: list[Entry] = []
        self.ended = False
        # The run's outcome once it ended (the websocket's run_finished fields); {} when unknown.
        self.summary: dict | None = None
        self._waiters: list[asyncio.Future] = []

    @property
    def last_index(self) -> int:
        return self.entries[-1][0] if self.entries else -1

    def add(self, entries: list[Entry]) -> None:
        if not entries:
            return
        self.entries.extend(entries)
        excess = len(self.entries) - settings.CIRKELLINE_EVENT_LOG_MAXLEN
        if excess > 0:
            del self.entries[:excess]
        self._wake()

    def end(self, summary: dict | None) -> bool:
        """Mark the log ended (its terminal entry is in it); False if it already was."""
        if self.ended:
            return False
        self.ended = True
        self.summary = summary or {}
        self._wake()
        return True

    def since(self, after: int) -> list[Entry]:
        """The entries whose index is above `after`."""
        entries = self.entries
        if not entries or entries[0][0] > after:
            return entries[:]
        return entries[bisect.bisect_right(entries, after, key=_index):]

    async def follow(self, after: int = -1, *, idle: float = 0.0) -> AsyncIterator[list[Entry]]:
        """Every entry after `after`, in batches (all that is there at each step), live until the end.

        With `idle` > 0, an empty batch is yielded whenever the reader has been given nothing for
        `idle` seconds (the SSE heartbeat: chat.api.sse), and never while entries keep coming.
        """
        quiet = _Quiet(idle) if idle > 0 else None
        try:
            while True:
                batch = self.since(after)
                if batch:
                    after = batch[-1][0]
                    if quiet is not None:
                        quiet.touch()
                    yield batch
                    continue
                if self.ended:
                    return
                if quiet is not None and quiet.due:
                    quiet.touch()
                    yield []
                    continue
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                if quiet is not None:
                    quiet.waiter = waiter
                try:
                    await waiter
                finally:
                    if quiet is not None:
                        quiet.waiter = None
                    if not waiter.done() or (quiet is not None and quiet.due):
                        waiter.cancel()
                        with contextlib.suppress(ValueError):
                            self._waiters.remove(waiter)
        finally:
            if quiet is not None:
                quiet.stop()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class _Quiet:
    """When a reader has been given nothing for `idle` seconds: `due`, and its waiter woken.

    One timer per `idle` seconds of the reader's life, not one per batch: when it fires after
    entries came meanwhile, it is set again for `idle` seconds after the last of them. Its
    callbacks belong to no run (`NO_RUN`), like the writer's.
    """

    __slots__ = ("idle", "loop", "last", "due", "waiter", "timer")

    def __init__(self, idle: float):
        self.idle = idle
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        self.due = False
        self.waiter: asyncio.Future | None = None
        self.timer = self.loop.call_at(self.last + idle, self._check, context=NO_RUN)

    def touch(self) -> None:
        """The reader was just given something (entries, or a heartbeat)."""
        self.last = self.loop.time()
        self.due = False

    def _check(self) -> None:
        now = self.loop.time()
        if now - self.last < self.idle - 0.001:  # something was sent meanwhile: wait from then
            self.timer = self.loop.call_at(self.last + self.idle, self._check, context=NO_RUN)
            return
        self.due = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        self.timer = self.loop.call_at(now + self.idle, self._check, context=NO_RUN)

    def stop(self) -> None:
        self.timer.cancel()
