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


def _plain_dict(event: Any) -> dict | None:
    """The event as agno's to_dict() would give it, if all its set fields are plain values."""
    names = field_names(type(event))
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
