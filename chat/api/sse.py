"""Server-sent events as AgentOS sends them: `event: <name>` and one line of compact JSON per frame.

`stream` is a run's response body: every batch of waiting events (merged by chat.runs.events.
coalesce) written as one chunk, and always exactly one terminal frame at the end, whatever
happens; the JSON is chat.agents.agno_overrides.event_json's (agno's bytes, cheaper).
"""

from __future__ import annotations

import json
import time
from typing import Any

from chat.agents.agno_overrides import event_json


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
