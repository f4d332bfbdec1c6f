"""What the fake provider was asked and how it is doing: the behaviour queue, the request log
and the live counters, behind one lock so that any thread may read them and wait on them.

Tests run the server on its own loop in a daemon thread and read these from the test's
thread or loop, so everything here is thread-safe; nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from .behaviours import Behaviour, Outcome
from .script import include_usage, tool_names


@dataclass(slots=True)
class RecordedRequest:
    """One chat-completions request as received, with the behaviour that answered it."""

    body: dict[str, Any]
    behaviour: Behaviour
    outcome: Outcome = Outcome.PENDING
    # time.monotonic() when the request was read, so a test can measure the gap between calls.
    received_at: float = 0.0

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return tool_names(self.body)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        return include_usage(self.body)


class Ledger:
    """Behaviour queue, request log and counters of one fake provider.

    ``open_connections`` counts TCP connections from accept to close, ``active_requests``
    chat-completions requests from the moment they are read until their outcome is set,
    ``total_requests`` every chat-completions request since start. ``max_recorded`` bounds
    the log (None = unbounded, 0 = keep nothing) so a long benchmark does not keep every
    prompt in memory.
    """

    def __init__(self, default: Behaviour | None = None, max_recorded: int | None = None) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Behaviour] = deque()
        self._default = default or Behaviour()
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._open_connections = 0
        self._active_requests = 0
        self._total_requests = 0

    # -- scripting --

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next chat-completions requests, one per request (FIFO)."""
        with self._cond:
            self._queue.extend(behaviours)

    def set_default(self, behaviour: Behaviour) -> None:
        """The behaviour used whenever the queue is empty."""
        with self._cond:
            self._default = behaviour

    def clear(self) -> None:
        """Forget queued behaviours and recorded requests (counters of live traffic stay)."""
        with self._cond:
            self._queue.clear()
            self._requests.clear()

    @property
    def pending_behaviours(self) -> int:
        with self._cond:
            return len(self._queue)

    # -- observability --

    @property
    def open_connections(self) -> int:
        with self._cond:
            return self._open_connections

    @property
    def active_requests(self) -> int:
        with self._cond:
            return self._active_requests

    @property
    def total_requests(self) -> int:
        """Chat-completions requests received since start (other paths are not counted)."""
        with self._cond:
            return self._total_requests

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded chat-completions requests, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def is_idle(self) -> bool:
        with self._cond:
            return self._open_connections == 0 and self._active_requests == 0

    def wait_until_sync(self, predicate: Callable[[Self], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every counter change)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_idle_sync(self, timeout: float = 5.0) -> bool:
        """Block until no connection is open and no request is active. Only for the threaded
        mode: in the server's own loop it would block the very loop that has to get idle."""
        return self.wait_until_sync(lambda p: p._open_connections == 0 and p._active_requests == 0, timeout)

    async def wait_until(self, predicate: Callable[[Self], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Await ``predicate(self)``, polling every few ms: works whether the server runs in
        this loop or in its own thread, without tying up an executor thread."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if predicate(self):
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.005, remaining))

    async def wait_idle(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - the tests' long-standing signature
        """Await ``open_connections == 0 and active_requests == 0``; False on timeout."""
        return await self.wait_until(lambda p: p._open_connections == 0 and p._active_requests == 0, timeout)

    # -- what the server reports --

    def admit(self, body: dict[str, Any]) -> RecordedRequest:
        """Take the next behaviour and count and record the request, in one locked step so
        that a concurrent test never sees a request counted but not yet recorded."""
        with self._cond:
            behaviour = self._queue.popleft() if self._queue else self._default
            record = RecordedRequest(body=body, behaviour=behaviour, received_at=time.monotonic())
            self._requests.append(record)
            self._total_requests += 1
            self._active_requests += 1
            self._cond.notify_all()
        return record

    def finish(self, record: RecordedRequest, outcome: Outcome) -> None:
        """Set a request's outcome and stop counting it as active, in one step."""
        with self._cond:
            record.outcome = outcome
            self._active_requests -= 1
            self._cond.notify_all()

    def count_connection(self, delta: int) -> None:
        with self._cond:
            self._open_connections += delta
            self._cond.notify_all()
