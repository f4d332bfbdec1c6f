"""The runs one socket streams: a pump task per run, reading the run's event log into frames.

Every run a socket follows (one it started, or one of the session it watches, started anywhere)
streams from a task of its own, so the consumer goes on handling frames while runs stream and
several runs share a socket. The pump reads the run's event log (chat.runs.eventlog: this
process's, or a mirror of Redis's) and sends `run_started`, the events after the seq it starts
from, and `run_finished` (chat.ws.frames). `streamed` remembers where the socket's recent streams
began, so a late `run.live` notice of a run streamed here already does not replay it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chat.runs import eventlog

from . import frames
from .tasks import spawn

logger = logging.getLogger(__name__)

# How many of the runs a socket streamed it remembers (for `streamed_from`).
STREAMED_RUNS = 256


class Following:
    """A run this socket streams: its frames, its pump task, and whether the socket started it."""

    __slots__ = ("frames", "task", "own")

    def __init__(self, run_frames: frames.RunFrames, own: bool):
        self.frames = run_frames
        self.task: asyncio.Task | None = None
        self.own = own


class Streams:
    """One socket's followed runs (`runs`, by run id) and where its recent streams began."""

    def __init__(self, send: Callable[[str], Awaitable[None]]):
        self._send = send
        self.runs: dict[str, Following] = {}
        # Runs this socket has streamed (the last STREAMED_RUNS): a `run.live` notice that arrives
        # after such a run ended (quick runs do) must not replay it a second time.
        self.streamed: dict[str, int] = {}  # run id -> the seq its stream here began after

    def follow(self, log_ref: eventlog.LogRef, after: int, *, own: bool, ref: Any = None) -> None:
        """Stream the run's events after `after` to the socket, from a task of its own."""
        following = Following(frames.RunFrames(log_ref.run_id, log_ref.meta, ref), own)
        following.frames.seq = after
        self.runs[log_ref.run_id] = following
        self.streamed[log_ref.run_id] = after
        if len(self.streamed) > STREAMED_RUNS:
            del self.streamed[next(iter(self.streamed))]
        following.task = spawn(self._pump(following, log_ref, after), f"ws-run-{log_ref.run_id}")

    def streamed_from(self, run_id: Any, after: int) -> bool:
        """Whether this socket streams (or streamed) the run's events after `after` already."""
        return run_id in self.runs or (run_id in self.streamed and self.streamed[run_id] >= after)

    def in_session(self, session_id: str) -> list[str]:
        """The ids of the runs of the session this socket streams."""
        return [run_id for run_id, following in self.runs.items() if following.frames.session_id == session_id]

    def keep_session(self, session_id: str | None) -> None:
        """Stop streaming runs of other sessions than `session_id` that this socket did not start."""
        for run_id, following in list(self.runs.items()):
            if not following.own and following.frames.session_id != session_id:
                following.task.cancel()  # a run of the session this socket no longer watches
                self.runs.pop(run_id, None)

    def stop(self) -> list[tuple[str, Following]]:
        """Stop every pump (the runs go on); the runs that were streamed."""
        stopped = list(self.runs.items())
        for _, following in stopped:
            following.task.cancel()
        self.runs.clear()
        return stopped

    async def _pump(self, following: Following, log_ref: eventlog.LogRef, after: int) -> None:
        """Stream one run's log to this socket: run_started, its events after `after`, run_finished."""
        run = following.frames
        try:
            async with log_ref.reading() as log:
                await self._send(run.started(own=following.own, joined=not following.own))
                async for batch in log.follow(after):
                    await self._send(run.events(batch))
                await self._send(run.finished(log.summary))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the socket broke; the run is not this task's to stop
            logger.exception("websocket stream of run %s failed", run.run_id)
        finally:
            if self.runs.get(run.run_id) is following:
                del self.runs[run.run_id]
