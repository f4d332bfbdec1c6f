"""The deadline of each wait for a provider stream's next chunk, on one timer per attempt (`ChunkDeadline`).

The retry layer (chat.agents.retry) gives every `anext` of a provider stream a deadline: the
first-token timeout until the call starts answering, then the stream-idle timeout. Only the time
spent waiting in `anext` counts, never the consumer's time between chunks. `asyncio.timeout`
around each `anext` gives exactly that, but schedules a timer (a heap push) and cancels it for
every chunk, and the cancelled timers churn the loop's heap; a stream is dozens of chunks, a
server hundreds of streams at once.

Here one timer per attempt is armed lazily instead. A wait only records its deadline; the timer,
when it fires, looks at the wait in progress: none (the consumer has the chunk) -> the timer is
dropped, the next wait arms a new one; a later deadline (chunks came, each pushing it) -> it is
re-armed for that deadline; a deadline that has passed -> the waiting task is cancelled, and the
wait's end turns that one cancel into the timeout, taking it back with `Task.uncancel()` as
`asyncio.timeout` does, so no stray cancel reaches the consumer and a cancel from outside (a run
cancelled by its user, its own deadline) still propagates as `CancelledError`.
"""

from __future__ import annotations

import asyncio


class ChunkDeadline:
    """The deadlines of one attempt's waits, on at most one armed timer.

    Per wait: `start(seconds)` right before awaiting the chunk, `stop()` right after it (in a
    `finally`); `stop()` tells whether this wait was cut off by its deadline, i.e. whether a
    `CancelledError` that ended it is the timeout. `close()` once the attempt is over.
    """

    __slots__ = ("_loop", "_handle", "_armed", "_deadline", "_task", "_cancelling", "_expired")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0  # when `_handle` fires
        self._deadline: float | None = None  # the wait in progress's deadline; None between waits
        self._task: asyncio.Task | None = None
        self._cancelling = 0  # the waiting task's cancel requests when its wait began
        self._expired = False  # the timer cancelled the waiting task

    def start(self, seconds: float) -> None:
        """A wait begins in the current task; it may last `seconds`."""
        loop = self._loop
        deadline = loop.time() + seconds
        self._deadline = deadline
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("ChunkDeadline should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        if self._handle is None:
            self._arm(deadline)
        elif deadline < self._armed:  # a shorter wait than the one armed for (first token -> idle)
            self._handle.cancel()
            self._arm(deadline)

    def stop(self) -> bool:
        """The wait is over, however it ended: True if its deadline cut it off (the timer's cancel
        taken back, and no other cancel request came meanwhile), so that a `CancelledError` that
        ended it is the timeout; False for any other cancel, which must propagate."""
        self._deadline = None
        if not self._expired:
            return False
        self._expired = False
        return self._task.uncancel() <= self._cancelling  # type: ignore[union-attr]

    def close(self) -> None:
        """The attempt is over: its timer, if armed, is dropped."""
        self._deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        self._armed = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        deadline = self._deadline
        if deadline is None:  # between waits: the next wait arms a timer again
            self._handle = None
        elif deadline > self._armed:  # the wait moved on since the timer was armed
            self._arm(deadline)
        else:  # this wait's deadline has passed
            self._handle = None
            self._expired = True
            self._task.cancel()  # type: ignore[union-attr]
