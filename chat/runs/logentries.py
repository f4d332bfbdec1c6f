"""A run event log's entries: their shape, their encoding (once per event), and their Redis form.

An entry is (event_index, event name, the event's JSON with `event_index` in it). Entries are made
here and nowhere else, whether from a run's own events (`encode`), from an end a run's worker
could not write (`terminal_entry`: the reaper's, a closed log's) or in place of events that could
not be encoded (`error_entry`), and written to and read from Redis in one line format (`lines`,
`parse_lines`). The in-process log (chat.runs.runlog), its writer (chat.runs.eventlog) and the
Redis side (chat.runs.eventlog_redis) all use them, so the three never disagree about an entry.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chat.agents.event_json import event_json
from chat.payload import has_lone_surrogate

STREAM_FAILED = ("Something went wrong while sending this run's events, so the stream was ended and the run "
                 "stopped. Please try again.")

Entry = tuple[int, str, str]  # (event_index, event name, the event's JSON with event_index in it)


def dumps(value: Any) -> str:
    """Compact JSON, as the log stores its records (UTF-8 kept as is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode(number: int, event: Any) -> Entry:
    """One log entry: the event's JSON (agno's bytes, chat.agents.event_json) with its index."""
    data = event_json(event)
    data = f'{data[:-1]},"event_index":{number}}}'
    if has_lone_surrogate(data):  # a provider sent one: it has no UTF-8 form (SSE and Redis need one)
        data = data.encode("utf-8", "replace").decode("utf-8")
    return (number, event.event, data)


def error_entry(number: int, *, run_id: str, session_id: str, team_id: str, team_name: str,
                content: str = STREAM_FAILED) -> Entry:
    """A terminal `TeamRunError` (`error_type: internal`) built from plain strings: it ends a log
    whose own events could not be encoded, so it must not fail the same way."""
    data = {"created_at": int(time.time()), "event": "TeamRunError", "team_id": team_id, "team_name": team_name,
            "run_id": run_id, "session_id": session_id, "nested_depth": 0, "content": content,
            "error_type": "internal", "error_id": "internal", "event_index": number}
    return (number, "TeamRunError", json.dumps(data, separators=(",", ":")))


def terminal_entry(number: int, terminal: Any) -> Entry:
    """The entry of a terminal event decided outside the run (an agno event, or a dict with its `event`)."""
    if isinstance(terminal, dict):
        data = {**terminal, "event_index": number}
        return (number, str(terminal["event"]), dumps(data))
    return encode(number, terminal)


def lines(entries: list[Entry]) -> str:
    """Entries as one Redis batch: a line each, `<event_index> <event name> <JSON>` (compact JSON has
    no raw newline)."""
    return "\n".join(f"{number} {name} {data}" for number, name, data in entries)


def parse_lines(batch: str) -> list[Entry]:
    """The entries of a Redis batch (`lines`)."""
    out = []
    for line in batch.split("\n"):
        number, name, data = line.split(" ", 2)
        out.append((int(number), name, data))
    return out
