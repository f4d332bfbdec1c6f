"""Encoding run events for the wire (SSE today, the websocket later), cheaply.

A streamed run sends tens of events, most of them one-token `RunContent` / `TeamRunContent`
deltas, and agno's `event.to_json()` shallow-copies and `asdict`-walks every event (~75 µs each
on the reference machine). `event_json` produces the *same* JSON for events whose set fields are
all plain JSON values (the content deltas and most other events) with a direct attribute walk
(~10 µs), and falls back to agno's own serializer for anything richer (tools, metrics, media,
member runs).

`coalesce` merges consecutive text deltas of the same run that are already waiting to be sent,
so a client that reads slower than tokens arrive gets fewer, larger frames instead of a backlog;
it never holds an event back to wait for more (no added latency).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

_PLAIN = (str, int, float, bool)
_FIELDS: dict[type, tuple[str, ...]] = {}
CONTENT_EVENTS = frozenset({"RunContent", "TeamRunContent"})
# Fields a text delta may carry besides its text without blocking a merge.
_MERGE_NEUTRAL = frozenset({"content", "created_at", "content_type", "reasoning_content", "nested_depth",
                            "workflow_agent"})


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()
    return names


def _is_plain(value: Any, depth: int = 0) -> bool:
    """JSON values only (what asdict() would copy unchanged): no dataclasses, models or media."""
    if value is None or isinstance(value, _PLAIN):
        return True
    if depth > 4:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(v, depth + 1) for v in value)
    return False


def _plain_dict(event: Any) -> dict | None:
    """The event as agno's to_dict() would give it, if all its set fields are plain values."""
    names = _field_names(type(event))
    if "event" not in names:  # not an agno event dataclass: it serialises itself
        return None
    data = {}
    for name in names:
        value = getattr(event, name)
        if value is None:
            continue
        if not isinstance(value, _PLAIN) and not _is_plain(value):
            return None
        data[name] = value
    index = getattr(event, "event_index", None)
    if index is not None:
        data["event_index"] = index
    return data


def event_json(event: Any) -> str:
    """Compact JSON of a run event, identical to `event.to_json(separators=(",", ":"), indent=None)`."""
    data = _plain_dict(event)
    if data is None:
        return event.to_json(separators=(",", ":"), indent=None)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def sse_frame(event: Any) -> bytes:
    """One AgentOS SSE frame: `event: <name>` and one line of compact JSON."""
    # "replace": a lone surrogate from a provider has no UTF-8 form; it becomes "?" rather than
    # breaking the stream.
    return f"event: {event.event}\ndata: {event_json(event)}\n\n".encode("utf-8", "replace")


def error_frame(*, run_id: str, session_id: str, team_id: str, team_name: str, content: str) -> bytes:
    """A terminal `TeamRunError` frame (`error_type: internal`), built without `event_json`.

    Sent when sending a run's own events failed: it must not fail the same way, so it is a few
    plain strings through json.dumps (ASCII output: nothing in it can fail to encode).
    """
    data = {"created_at": int(time.time()), "event": "TeamRunError", "team_id": team_id, "team_name": team_name,
            "run_id": run_id, "session_id": session_id, "nested_depth": 0, "content": content,
            "error_type": "internal", "error_id": "internal"}
    return f"event: TeamRunError\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode("ascii")


def _mergeable(a: Any, b: Any) -> bool:
    if type(a) is not type(b) or a.event not in CONTENT_EVENTS or a.run_id != b.run_id:
        return False
    if not (isinstance(a.content, str) and isinstance(b.content, str)):
        return False
    for name in _field_names(type(a)):
        if name in _MERGE_NEUTRAL:
            continue
        if getattr(a, name) != getattr(b, name):
            return False
    return not a.reasoning_content and not b.reasoning_content


def coalesce(events: list[Any]) -> list[Any]:
    """Merge runs of consecutive text deltas of one run into single deltas (order kept)."""
    if len(events) < 2:
        return events
    out: list[Any] = []
    copies: set[int] = set()  # positions in `out` holding our own copy (safe to extend)
    for event in events:
        last = len(out) - 1
        if last >= 0 and _mergeable(out[last], event):
            if last not in copies:
                out[last] = copy.copy(out[last])  # never modify an event someone else holds
                copies.add(last)
            out[last].content += event.content
            continue
        out.append(event)
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
