"""A live run (`RunHandle`: its events, its outcome, the way to stop it) and this process's registry of them.

A run's events are numbered as they are published (the event index, from 0: chat.runs.eventlog);
a streamed run's log takes them in from the handle, and every transport reads that log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from chat.agents.runtime import cancel_run as agno_cancel_run
from chat.context import RunContext
from chat.observability import prom
from metrics.models import RunStatus

from .accounting import RunAccount
from .monitor import DelegationMonitor
from .request import RunRequest
from .result import RunResult
from .teams import team_members

_END = object()  # published once, after the run's terminal event: its events end there


class RunHandle:
    """A live run: its events, its outcome, and the way to stop it."""

    def __init__(self, request: RunRequest, session_id: str, ctx: RunContext, account: RunAccount):
        self.request = request
        self.run_id = request.run_id
        self.user_id = request.user_id
        self.team_id = request.team_id
        self.session_id = session_id
        self.ctx = ctx
        self.account = account
        self.started_at = datetime.now(UTC)
        self.abort_reason: str | None = None
        self.result: RunResult | None = None
        # USD (Decimal) once the final write priced the run; None while unknown or unpriced.
        self.cost: Any = None
        # Every event the run published, in order: an event's index is its position here. Kept for
        # the run's life (the log holds their encoded form; `events()` serves them in-process).
        self._raw: list[Any] = []
        # The index of the run's first event here: 0, or for a paused run's continuation the one
        # after its paused part's last (its log goes on numbering where the pause left it).
        self.index_base = 0
        # A continuation (chat.runs.pause): the paused run's requirements with its user's answers,
        # and what its usage row held before the pause (added to the continued part's).
        self.continuation: list[dict] | None = None
        self.prior: dict | None = None
        self._closed = False  # _END was published
        self._consumed = 0  # how many of _raw `events()` / `event_batches()` have handed out
        self._raw_waiter: asyncio.Future | None = None
        self._log_writer: Any = None  # chat.runs.eventlog's, for a streamed run
        self.log: Any = None  # a streamed run's chat.runs.runlog.RunLog (None: stream=false)
        self._done = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._finalizing = False
        # Delegation failures (chat.runs.monitor): fed by the run task, asked by the final write.
        self.monitor = DelegationMonitor(
            run_id=self.run_id, session_id=session_id, user_id=self.user_id, team_id=self.team_id,
            stall_seconds=settings.CIRKELLINE_MEMBER_STALL_SECONDS, account=account,
            members=lambda: team_members(self.team_id), publish=self._publish)

    @property
    def is_finished(self) -> bool:
        return self._done.is_set()

    @property
    def status(self) -> str:
        return self.result.status if self.result else "running"

    async def events(self) -> AsyncIterator[Any]:
        """The run's events as they happen; the last one is its terminal event.

        In-process consumers (tests, tools): consume them from one place only (each event is
        handed out once). Transports read the run's log instead (chat.runs.eventlog).
        """
        async for batch in self.event_batches():
            for event in batch:
                yield event

    async def event_batches(self, limit: int = 256) -> AsyncIterator[list[Any]]:
        """Like `events()`, but each step yields every event already waiting (at least one)."""
        while True:
            if self._consumed < len(self._raw):
                start = self._consumed
                self._consumed = min(len(self._raw), start + limit)
                yield self._raw[start:self._consumed]
                continue
            if self._closed:
                return
            waiter = self._raw_waiter
            if waiter is None or waiter.done():
                waiter = self._raw_waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)

    @property
    def event_count(self) -> int:
        """The next event's index (events published so far, after `index_base`)."""
        return self.index_base + len(self._raw)

    async def wait(self) -> RunResult:
        await self._done.wait()
        assert self.result is not None
        return self.result

    def abort(self, reason: str = RunStatus.CANCELLED) -> bool:
        """Stop the run (cancel, disconnect, deadline). False if it was already ending."""
        if self.abort_reason is not None or self._finalizing or self._task is None or self._task.done():
            return False
        self.abort_reason = reason
        self.ctx.stopping = True
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        agno_cancel_run(self.run_id)  # cooperative: member runs check it between chunks
        current = asyncio.current_task()
        for task in list(self.ctx.tasks or ()):
            if task is not current and not task.done() and task is not self._task:
                task.cancel()
        # Called from inside the run task itself (a provider deadline in the leader's call), the
        # error being raised there ends the run; cancelling the running task would instead fire
        # at its next await, wherever that is.
        if current is not self._task:
            self._task.cancel()
        return True

    def _publish(self, event: Any) -> None:
        if event is _END:
            self._closed = True
        else:
            self._raw.append(event)
        waiter = self._raw_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._log_writer is not None:
            self._log_writer.poke()


# --- the registry of live runs (per process) ------------------------------------------------
# Per process on purpose: a run's task, queue and cancel live here. Whatever must hold across
# processes (per-user limits, which process runs a run) is in Redis (chat.runs.admission).

_live: dict[str, RunHandle] = {}


def live_run(run_id: str) -> RunHandle | None:
    return _live.get(run_id)


def live_runs() -> list[RunHandle]:
    return list(_live.values())


def live_runs_of(user_id: int) -> list[RunHandle]:
    return [h for h in _live.values() if h.user_id == user_id]


def live_run_count() -> int:
    """Runs live in this process (the benchmark's loop statistics and the active-runs gauge report it)."""
    return len(_live)


prom.register_active_runs(live_run_count)  # sampled at scrape time (docs/OPERATIONS.md), nothing per run


_on_idle: Callable[[], None] | None = None
_on_live: list[Callable[[RunHandle], None]] = []


def when_live(callback: Callable[[RunHandle], None]) -> None:
    """Call `callback(handle)` when a streamed run has started (its log is open).

    The websocket transport registers here to tell sockets watching the run's session, whatever
    transport started it: the run service does not import the transports above it.
    """
    if callback not in _on_live:
        _on_live.append(callback)


def announce_live(handle: RunHandle) -> None:
    for callback in _on_live:
        try:
            callback(handle)
        except Exception:  # noqa: BLE001 - telling watchers must never fail the run
            logging.getLogger(__name__).exception("announcing run %s failed", handle.run_id)


def when_idle(callback: Callable[[], None] | None) -> None:
    """Call `callback` each time the last live run of the process has ended (None: stop).

    The process's memory housekeeping (cirkelline_site/process_tuning.py) registers here: the run
    service does not import the project package above it.
    """
    global _on_idle
    _on_idle = callback


def register(handle: RunHandle) -> None:
    _live[handle.run_id] = handle


def unregister(handle: RunHandle) -> None:
    """Forget an ended run; tell the idle callback when it was the last one."""
    _live.pop(handle.run_id, None)
    if not _live and _on_idle is not None:
        _on_idle()


