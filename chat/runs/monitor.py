"""Delegation failures of a live run: the run's side of chat.runs.delegation's pure detector.

`DelegationMonitor` (one per run, held by its RunHandle) is fed every event by the run task
(chat.runs.drive) and keeps only what `detect` needs: the leader's delegation tool-call events
and its member runs' start and terminal events (the leader's text is the RunAccount's, which
already drops discarded text). Everything else costs a few attribute lookups.

A member that stalls is found while the run is live: a `StallWatcher` sees the member runs'
events and one timer per run (`loop.call_later` at the watcher's next deadline, re-armed when it
fires, cancelled when the run ends) polls it; no task sleeps per run, no event polls. A finding
is, at once and while the run goes on to its own end,
- written as a `metrics.DelegationFailure` row by a task of its own that is not one of the
  run's tasks (cancelling the run does not stop it); the database being down only logs: the
  run's final write records every finding again, idempotently;
- published to the run's clients as a `DelegationFailureDetected` event (chat.runs.events);
- counted in Prometheus (`cirkelline_delegation_failures_total{kind}`) and logged (a
  `delegation failure` line; chat.observability.hooks).

`failures()`, called by the final write, runs `detect` over what was kept, with the team's
members, and returns every finding (live ones first) in the shape metrics.recording.record_run
takes; the findings not announced yet are published, counted and logged then, before the
terminal event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from chat.agents.providers import model_spec
from chat.agents.runtime import DELEGATION_TOOLS
from chat.context import current_run
from chat.observability import hooks
from chat.storage.executor import run_db
from metrics.recording import record_delegation_failures

from .accounting import RunAccount
from .delegation import (
    LEADER_COMPLETED,
    LEADER_CONTENT,
    MEMBER_STARTED,
    MEMBER_TERMINAL,
    TOOL_COMPLETED,
    TOOL_ERROR,
    TOOL_STARTED,
    Finding,
    Member,
    StallWatcher,
    detect,
)
from .events import DelegationFailureDetected

logger = logging.getLogger(__name__)

_TOOL_EVENTS = frozenset({TOOL_STARTED, TOOL_COMPLETED, TOOL_ERROR})
_MEMBER_KEPT = MEMBER_STARTED | MEMBER_TERMINAL

# Live writes of findings, kept referenced until done (they outlive a cancelled run).
_writes: set[asyncio.Task] = set()


class DelegationMonitor:
    """One run's delegation failures: fed every event (`observe`), asked once at the end (`failures`)."""

    def __init__(self, *, run_id: str, session_id: str, user_id: int, team_id: str, stall_seconds: float | None,
                 account: RunAccount, members: Callable[[], list[Member]], publish: Callable[[Any], None]):
        self.run_id, self.session_id, self.user_id, self.team_id = run_id, session_id, user_id, team_id
        self._account = account
        self._members = members
        self._publish = publish
        self._kept: list[Any] = []  # leader delegation tool-call events, member run start/terminal events
        self._watcher = StallWatcher(run_id, stall_seconds) if stall_seconds else None
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self._found: dict[tuple[str, str], Finding] = {}  # every finding announced, in order
        self._writes: list[asyncio.Task] = []

    # --- while the run streams ------------------------------------------------------------

    def observe(self, event: Any) -> None:
        """One event of the run (every one, in order). Cheap for the leader's text deltas."""
        parent = getattr(event, "parent_run_id", None)
        if parent == self.run_id:  # an event of one of the run's member runs
            if event.event in _MEMBER_KEPT:
                self._kept.append(event)
        elif parent is None and getattr(event, "event", None) in _TOOL_EVENTS and event.run_id == self.run_id:
            tool = getattr(event, "tool", None)
            if tool is None or getattr(tool, "tool_name", None) not in DELEGATION_TOOLS:
                return
            self._kept.append(event)
        else:
            return
        watcher = self._watcher
        if watcher is not None:
            watcher.observe(event)
            if self._timer is None:
                self._arm()

    def _arm(self) -> None:
        """Set the timer at the watcher's next deadline (the watcher's deadlines only move later)."""
        if self._stopped or self._watcher is None:
            return
        deadline = self._watcher.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._stopped or self._watcher is None:
            return
        for finding in self._watcher.poll():
            if self._announce(finding, live=True):
                self._write_now(finding)
        self._arm()

    def stop(self) -> None:
        """The run is ending: no more stall checks."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _announce(self, finding: Finding, *, live: bool) -> bool:
        """Publish, count and log a finding the first time it is seen. False if it was already announced."""
        key = (finding.kind, finding.member)
        if key in self._found:
            return False
        self._found[key] = finding
        hooks.delegation_failure(kind=finding.kind, member=finding.member, live=live, excerpt=finding.excerpt)
        self._publish(DelegationFailureDetected(
            run_id=self.run_id, session_id=self.session_id, team_id=self.team_id, kind=finding.kind,
            member=finding.member, excerpt=finding.excerpt))
        return True

    def identity(self) -> dict[str, Any]:
        """The run's fields a DelegationFailure row takes (as in its usage row)."""
        return {"run_id": self.run_id, "session_id": self.session_id, "user_id": self.user_id,
                "model": str(model_spec())}

    def _write_now(self, finding: Finding) -> None:
        """Record a live finding in a task that is not the run's: cancelling the run must not stop it."""
        token = current_run.set(None)
        try:
            task = asyncio.get_running_loop().create_task(_write(self.identity(), finding.as_dict()))
        finally:
            current_run.reset(token)
        _writes.add(task)
        task.add_done_callback(_writes.discard)
        self._writes.append(task)

    async def written(self) -> None:
        """Wait until the live writes started so far are done (stored, or given up to the final write)."""
        if self._writes:
            await asyncio.wait(list(self._writes))

    # --- at the end -----------------------------------------------------------------------

    def _leader_text(self) -> str:
        """What the leader said: its streamed text (less what was discarded), else its final answer."""
        text = self._account.partial_content
        if not text and getattr(self._account.terminal, "event", None) == LEADER_COMPLETED:
            content = getattr(self._account.terminal, "content", None)
            text = content if isinstance(content, str) else ""
        return text

    def failures(self) -> list[dict[str, str]]:
        """Every delegation failure of the run, as record_run's `failures` takes them (kind, member, excerpt).

        For the run's final write. Stops the stall checks; the findings not announced yet are
        published (before the run's terminal event) and counted. A detector failure is logged
        and loses only the end-of-run findings, never the run's write.
        """
        self.stop()
        try:
            text = self._leader_text()
            events = self._kept if not text else [
                {"event": LEADER_CONTENT, "run_id": self.run_id, "content": text}, *self._kept]
            for finding in detect(events, run_id=self.run_id, members=self._members()):
                self._announce(finding, live=False)
        except Exception:
            logger.exception("run %s: delegation-failure detection failed; recording the live findings only",
                             self.run_id)
        return [finding.as_dict() for finding in self._found.values()]


async def _write(identity: dict[str, Any], failure: dict[str, str]) -> None:
    try:
        await run_db(record_delegation_failures, identity, [failure])
    except Exception as exc:  # noqa: BLE001 - the database is down: the run's final write records it
        logger.warning("run %s: could not record its %s finding now (%s: %s); its final write will",
                       identity["run_id"], failure["kind"], type(exc).__name__, exc)
