"""Delegation failures in a team run's events: pure functions and a clock-fed watcher (no I/O).

Events are read duck-typed: agno event objects or their dicts (`event.to_dict()`), by the
`event` name (agno's own enums, from chat.agents.runtime; verified against agno's streams in
tests/runs/test_delegation_agno.py) and a few attributes, so this runs on stored events too.

Kinds (metrics.models.FailureKind):
- announced_not_executed: the leader's text announces handing work to a member (see
  chat/runs/announcements.py) and the run made no delegation tool call for that member (a
  broadcast to all members covers every one; a generic "a specialist" is covered by any call);
- unknown_member: delegate_task_to_member named a member the team does not have (agno answers
  the leader "Member with ID ... not found");
- empty_task: a delegation whose task has no words;
- member_error: a member run ended in RunError (or the delegation tool call errored);
- member_empty_result: a member run completed with no content;
- member_stalled: a member run produced no event for CIRKELLINE_MEMBER_STALL_SECONDS
  (`StallWatcher`, live with a monotonic clock; `detect` replays it on event timestamps).
At most one finding per kind and member (the metrics table keeps the same key).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chat.agents.runtime import DELEGATION_TOOLS, RunEvent, TeamRunEvent

from .announcements import find_announcements, member_patterns

TOOL_STARTED = TeamRunEvent.tool_call_started.value
TOOL_COMPLETED = TeamRunEvent.tool_call_completed.value
TOOL_ERROR = TeamRunEvent.tool_call_error.value
LEADER_CONTENT, LEADER_COMPLETED = TeamRunEvent.run_content.value, TeamRunEvent.run_completed.value
# A member is an agent (RunEvent) or, nested, a team (TeamRunEvent).
MEMBER_STARTED = frozenset({RunEvent.run_started.value, TeamRunEvent.run_started.value})
MEMBER_COMPLETED = frozenset({RunEvent.run_completed.value, TeamRunEvent.run_completed.value})
MEMBER_ERROR = frozenset({RunEvent.run_error.value, TeamRunEvent.run_error.value})
MEMBER_TERMINAL = MEMBER_COMPLETED | MEMBER_ERROR | {RunEvent.run_cancelled.value, TeamRunEvent.run_cancelled.value}
NOT_FOUND = "member with id "
EXCERPT = 300


@dataclass(frozen=True)
class Member:
    id: str
    name: str = ""
    role: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    kind: str
    member: str = ""
    excerpt: str = ""

    def as_dict(self) -> dict[str, str]:
        """The shape metrics.recording.record_delegation_failures takes."""
        return {"kind": self.kind, "member": self.member, "excerpt": self.excerpt}


def field(obj: Any, name: str, default: Any = None) -> Any:
    """An attribute of an agno object or a key of its dict."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _clip(text: Any) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "\u2026"


def _tool(event: Any) -> tuple[str, dict, Any]:
    """(tool name, tool args, the tool object) of a tool-call event."""
    tool = field(event, "tool") or {}
    return str(field(tool, "tool_name") or ""), field(tool, "tool_args") or {}, tool


def _is_member_event(event: Any, run_id: str | None) -> bool:
    parent = field(event, "parent_run_id")
    return bool(parent) and (run_id is None or parent == run_id) and field(event, "run_id") != run_id


def _member_of(event: Any) -> str:
    return str(field(event, "agent_id") or field(event, "team_id") or field(event, "agent_name") or "")


def leader_text(events: Sequence[Any], run_id: str | None) -> str:
    """What the leader said: its streamed text, or its final content when nothing streamed."""
    deltas = [field(e, "content") for e in events if field(e, "event") == LEADER_CONTENT
              and (run_id is None or field(e, "run_id") == run_id)]
    text = "".join(d for d in deltas if isinstance(d, str))
    if text:
        return text
    finals = [field(e, "content") for e in events if field(e, "event") == LEADER_COMPLETED
              and (run_id is None or field(e, "run_id") == run_id) and not field(e, "parent_run_id")]
    return next((f for f in finals if isinstance(f, str)), "")


class StallWatcher:
    """Reports a member run that has produced no event for `stall_seconds` (once per member run).

    Feed it every event of the run with `observe`; call `poll` whenever convenient (it never
    sleeps); `next_deadline` says when the next poll could report something. Times come from
    `clock` (monotonic) unless given.
    """

    def __init__(self, run_id: str | None, stall_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.run_id, self.stall_seconds, self.clock = run_id, stall_seconds, clock
        self._pending: dict[str, tuple[str, float]] = {}  # delegation tool call id -> (member, last seen)
        self._runs: dict[str, tuple[str, float]] = {}  # member run id -> (member, last seen)
        self._reported: set[str] = set()

    def observe(self, event: Any, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        name = field(event, "event")
        if not self._pending and name not in MEMBER_TERMINAL:
            # The common case, cheap: one more event (a text delta) of a member run already watched.
            member_run = field(event, "run_id")
            watched = self._runs.get(member_run) if isinstance(member_run, str) else None
            if watched is not None and field(event, "parent_run_id") == self.run_id:
                self._runs[member_run] = (watched[0], now)
                return
        if name in (TOOL_STARTED, TOOL_COMPLETED, TOOL_ERROR) and field(event, "run_id") == self.run_id:
            tool_name, args, tool = _tool(event)
            if tool_name in DELEGATION_TOOLS:
                call_id = str(field(tool, "tool_call_id") or id(tool))
                if name == TOOL_STARTED:
                    self._pending[call_id] = (str(args.get("member_id") or "all members"), now)
                else:
                    self._pending.pop(call_id, None)
                    self._runs.pop(str(field(tool, "child_run_id") or ""), None)
            return
        if not _is_member_event(event, self.run_id):
            return
        member_run, member = str(field(event, "run_id") or ""), _member_of(event)
        if name in MEMBER_TERMINAL:
            self._runs.pop(member_run, None)
            return
        for key, (waiting_for, _) in list(self._pending.items()):
            if waiting_for == "all members":  # a broadcast call lives while any member is active
                self._pending[key] = (waiting_for, now)
        if name in MEMBER_STARTED:
            # The delegation's member run has started: watch the run instead of the call.
            started = next((k for k, (m, _) in self._pending.items() if m == member), None)
            if started is None:
                started = next((k for k, (m, _) in self._pending.items() if m != "all members"), None)
            if started is not None:
                self._pending.pop(started)
        self._runs[member_run] = (member, now)

    def poll(self, now: float | None = None) -> list[Finding]:
        now = self.clock() if now is None else now
        found = []
        for key, (member, last) in [*self._runs.items(), *self._pending.items()]:
            if key not in self._reported and now - last >= self.stall_seconds:
                self._reported.add(key)
                excerpt = f"No event from {member} for {now - last:.1f} s (limit {self.stall_seconds:g} s)."
                found.append(Finding("member_stalled", member, excerpt))
        return found

    def next_deadline(self) -> float | None:
        waiting = [last for key, (_, last) in [*self._runs.items(), *self._pending.items()]
                   if key not in self._reported]
        return min(waiting) + self.stall_seconds if waiting else None


def _timestamp(event: Any) -> float | None:
    value = field(event, "created_at")
    return float(value) if isinstance(value, (int, float)) else None


def detect(events: Iterable[Any], *, run_id: str | None, members: Sequence[Member] = (),
           stall_seconds: float | None = None) -> list[Finding]:
    """Every delegation failure in a run's events (see the module docstring for the kinds).

    `members` (the team's) lets unknown member ids and announcements by name be recognised;
    `stall_seconds` turns on the stall check over the events' `created_at` timestamps.
    """
    events = list(events)
    known = {m.id for m in members}
    findings: list[Finding] = []
    delegated, seen_calls = False, set()
    delegated_to: set[str] = set()  # normalised member ids the leader called (ALL_MEMBERS for a broadcast)
    # Members whose own run events are in the stream: their RunError / RunCompleted decide.
    streamed_members = {_member_of(e) for e in events if _is_member_event(e, run_id)}
    watcher = StallWatcher(run_id, stall_seconds) if stall_seconds else None

    for event in events:
        name = field(event, "event")
        if watcher is not None and (stamp := _timestamp(event)) is not None:
            findings += watcher.poll(stamp)
            watcher.observe(event, stamp)
        if name in (TOOL_STARTED, TOOL_COMPLETED, TOOL_ERROR):
            if run_id is not None and field(event, "run_id") != run_id:
                continue
            tool_name, args, tool = _tool(event)
            if tool_name not in DELEGATION_TOOLS:
                continue
            delegated = True
            member = str(args.get("member_id") or "") if tool_name == "delegate_task_to_member" else "all members"
            delegated_to.add(_same_member(member))
            call_id = field(tool, "tool_call_id") or id(tool)
            if call_id not in seen_calls:
                seen_calls.add(call_id)
                if member != "all members" and (not member or (known and member not in known)):
                    findings.append(Finding("unknown_member", member, _clip(f"delegate_task_to_member({args})")))
                if not any(ch.isalnum() for ch in str(args.get("task") or "")):
                    findings.append(Finding("empty_task", member, _clip(f"{tool_name}({args})")))
            result = str(field(tool, "result") or "")
            if name == TOOL_COMPLETED and result.strip().lower().startswith(NOT_FOUND):
                findings.append(Finding("unknown_member", member, _clip(result)))
            elif name == TOOL_ERROR or (name == TOOL_COMPLETED and field(tool, "tool_call_error")):
                findings.append(Finding("member_error", member, _clip(field(event, "error") or result)))
            elif name == TOOL_COMPLETED and not result.strip() and member not in streamed_members:
                # Member events not streamed: the empty tool result is all there is to go on.
                findings.append(Finding("member_empty_result", member, "The delegation returned nothing."))
        elif _is_member_event(event, run_id) and name in MEMBER_ERROR:
            findings.append(Finding("member_error", _member_of(event), _clip(field(event, "content"))))
        elif _is_member_event(event, run_id) and name in MEMBER_COMPLETED:
            if not str(field(event, "content") or "").strip():
                findings.append(Finding("member_empty_result", _member_of(event), "The member answered nothing."))

    if watcher is not None and events:
        last = next((s for s in map(_timestamp, reversed(events)) if s is not None), None)
        if last is not None:
            findings += watcher.poll(last)
    patterns = [(m.id, member_patterns(m.id, m.name, m.aliases)) for m in members]
    for announced in find_announcements(leader_text(events, run_id), patterns):
        if announced.member:  # a named member: its own delegation must have been made
            missing = not {_same_member(announced.member), _same_member("all members")} & delegated_to
        else:  # "a specialist", "I'll delegate this": any delegation does
            missing = not delegated
        if missing:
            findings.append(Finding("announced_not_executed", announced.member, _clip(announced.sentence)))
    return _unique(findings)


def _same_member(member_id: str) -> str:
    """A member id as the leader may spell it in a call ("Research Specialist", "research_specialist")."""
    return "-".join(member_id.lower().replace("_", " ").split())


def _unique(findings: list[Finding]) -> list[Finding]:
    seen, result = set(), []
    for finding in findings:
        if (finding.kind, finding.member) not in seen:
            seen.add((finding.kind, finding.member))
            result.append(finding)
    return result
