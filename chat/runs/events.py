"""Cirkelline's own run events, and merging waiting text deltas: what every transport shares.

- `ContentDiscarded` (`RunContentDiscarded` / `TeamRunContentDiscarded`): drop text a retried
  provider call had already streamed (chat.agents.retry says when).
- `DelegationFailureDetected`: the run service found a delegation failure in the run
  (chat.runs.monitor; the kinds are in chat.runs.delegation and docs/COST.md).
- `coalesce` merges consecutive text deltas of the same run that are already waiting to be sent,
  so a client that reads slower than tokens arrive gets fewer, larger frames instead of a
  backlog; it never holds an event back to wait for more (no added latency). The SSE stream
  (chat.api.sse) and the websocket (chat.ws.frames) send what it returns.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any

from chat.agents.event_json import field_names
from chat.agents.runtime import CONTENT_EVENTS

# Fields a text delta may carry besides its text without blocking a merge.
_MERGE_NEUTRAL = frozenset({"content", "created_at", "content_type", "reasoning_content", "nested_depth",
                            "workflow_agent"})


def _mergeable(a: Any, b: Any) -> bool:
    if type(a) is not type(b) or a.event not in CONTENT_EVENTS or a.run_id != b.run_id:
        return False
    if not (isinstance(a.content, str) and isinstance(b.content, str)):
        return False
    for name in field_names(type(a)):
        if name in _MERGE_NEUTRAL:
            continue
        if getattr(a, name) != getattr(b, name):
            return False
    return not a.reasoning_content and not b.reasoning_content


def coalesce(events: list[Any]) -> list[Any]:
    """Merge runs of consecutive text deltas of one run into single deltas (order kept)."""
    if len(events) < 2:
        return events
    return [event for _, event in coalesce_numbered(events, 0)]


def coalesce_numbered(events: list[Any], first: int) -> list[tuple[int, Any]]:
    """`coalesce`, each result with the number of the last event merged into it, events being
    numbered from `first` (a run's event index: chat.runs.eventlog)."""
    out: list[tuple[int, Any]] = []
    copies: set[int] = set()  # positions in `out` holding our own copy (safe to extend)
    for number, event in enumerate(events, first):
        last = len(out) - 1
        if last >= 0 and _mergeable(out[last][1], event):
            merged = out[last][1]
            if last not in copies:
                merged = copy.copy(merged)  # never modify an event someone else holds
                copies.add(last)
            merged.content += event.content
            out[last] = (number, merged)
            continue
        out.append((number, event))
    return out


@dataclass
class ContentDiscarded:
    """Cirkelline's own event: drop the last `discarded_characters` streamed by `run_id`.

    Sent when a provider call failed after part of its answer had been streamed and is being
    retried: the retry's text follows, so keeping the partial text would duplicate it.
    """

    run_id: str
    session_id: str
    discarded_characters: int
    team_id: str | None = None
    agent_id: str | None = None
    content: str = ("The answer was interrupted by a provider error and is being regenerated; "
                    "discard the text streamed since the last model request started.")
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def event(self) -> str:
        return "RunContentDiscarded" if self.agent_id else "TeamRunContentDiscarded"

    def to_dict(self) -> dict:
        data = {"event": self.event, **{k: v for k, v in self.__dict__.items() if v is not None}}
        return data

    def to_json(self, separators=(",", ":"), indent=None) -> str:
        return json.dumps(self.to_dict(), separators=separators, indent=indent, ensure_ascii=False)


@dataclass
class DelegationFailureDetected:
    """Cirkelline's own event: a delegation failure of this run (chat.runs.monitor).

    A stalled member is announced while the run goes on; the other kinds when the run ends,
    before its terminal event. Each (kind, member) is announced once; the same finding is a
    `metrics.DelegationFailure` row. Serialised like agno's events (`to_json`), so it reaches
    SSE and websocket clients by the path ContentDiscarded takes.
    """

    run_id: str
    session_id: str
    kind: str  # metrics.models.FailureKind
    member: str = ""
    excerpt: str = ""
    team_id: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time()))

    event = "DelegationFailureDetected"

    def to_dict(self) -> dict:
        return {"event": self.event, **{k: v for k, v in self.__dict__.items() if v is not None}}

    def to_json(self, separators=(",", ":"), indent=None) -> str:
        return json.dumps(self.to_dict(), separators=separators, indent=indent, ensure_ascii=False)
