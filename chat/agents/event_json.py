"""A run event's JSON, byte-identical to agno's `to_json`; pinned by tests/agents/test_agno_drift.py.

`event_json` reproduces agno's `BaseRunOutputEvent.to_json` (compact separators) by a direct
attribute walk (a saving: agno shallow-copies and `asdict`-walks every event;
docs/PERFORMANCE.md), falling back to agno's own for events whose fields are not plain JSON
values. It depends on agno's `to_dict`/`to_json` as of the pinned version: the drift test records
a hash of their source and names this module when one changes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agno.models.response import ToolExecution
from agno.utils.serialize import json_serializer  # what agno's to_json falls back to

_PLAIN = (str, int, float, bool)
_FIELDS: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """The dataclass field names of an event class, cached per class (event_json and
    chat.runs.events' merging of text deltas read them on every event)."""
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


# agno's to_dict serialises these fields by hand, after the others (BaseRunOutputEvent
# _HAND_SERIALIZED_FIELDS). Those Cirkelline's runs carry are done here, in agno's order, with
# agno's conditions; an event with any other of them set is left to agno's own serializer.
_HAND_SERIALIZED = frozenset({
    "tools", "tool", "metadata", "image", "images", "videos", "audio", "response_audio", "citations",
    "member_responses", "reasoning_messages", "reasoning_steps", "references", "additional_input",
    "session_summary", "metrics", "run_input", "requirements", "tasks", "memories", "followups"})
_BY_HAND_ORDER = ("metadata", "followups", "member_responses", "tools", "tool", "metrics")


def _tool(value: Any) -> Any:
    return value.to_dict() if isinstance(value, ToolExecution) else value


def _by_hand(name: str, value: Any) -> Any:
    """A hand-serialised field as agno's to_dict gives it (`_SKIP`: agno leaves it out), or
    `_AGNO`: only agno's own serializer will do."""
    if name in ("metadata", "followups"):
        return value if _is_plain(value) else _AGNO
    if name == "member_responses":  # agno keeps a non-empty list only, each by its own to_dict
        return [response.to_dict() for response in value] if value else _SKIP
    if name == "tools":
        return [_tool(tool) for tool in value]
    if name == "tool":
        return _tool(value)
    if name == "metrics":
        return value.to_dict()
    return _AGNO


_SKIP, _AGNO = object(), object()


def _plain_dict(event: Any) -> dict | None:
    """The event as agno's to_dict() would give it, key order included: its set fields that are
    plain values in field order, `event_index`, then the hand-serialised fields it carries, in
    agno's order. None when agno's own serializer must do it (media, models, other records)."""
    names = field_names(type(event))
    if "event" not in names:  # not an agno event dataclass: it serialises itself
        return None
    data = {}
    later = None
    for name in names:
        value = getattr(event, name)
        if value is None:
            continue
        if name in _HAND_SERIALIZED:
            if later is None:
                later = {}
            later[name] = value
            continue
        if not isinstance(value, _PLAIN) and not _is_plain(value):
            return None
        data[name] = value
    index = getattr(event, "event_index", None)
    if index is not None:
        data["event_index"] = index
    if later:
        if not later.keys() <= _BY_HAND_ALLOWED:
            return None
        for name in _BY_HAND_ORDER:
            if name in later:
                value = _by_hand(name, later[name])
                if value is _AGNO:
                    return None
                if value is not _SKIP:
                    data[name] = value
    return data


_BY_HAND_ALLOWED = frozenset(_BY_HAND_ORDER)


def event_json(event: Any) -> str:
    """Compact JSON of a run event, identical to `event.to_json(separators=(",", ":"), indent=None)`."""
    data = _plain_dict(event)
    if data is None:
        return event.to_json(separators=(",", ":"), indent=None)
    return json.dumps(data, separators=(",", ":"), default=json_serializer, ensure_ascii=False)
