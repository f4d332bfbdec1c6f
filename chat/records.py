"""Rows <-> agno's session and run dicts: the conversions the models, storage and the API share.

Pure functions over dicts and rows (no queries, no agno import). They sit below everything that
reads or writes chat sessions: the session queries (chat.models), the agno adapter and the final
write (chat.storage), the API's schemas (chat.api.schemas).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone


def epoch(value: datetime | None) -> int | None:
    """A datetime as agno stores times: whole seconds since the epoch."""
    return int(value.timestamp()) if value else None


def from_epoch(value: Any) -> datetime:
    """agno's epoch seconds as an aware datetime (now, for a missing or bad value)."""
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return timezone.now()


def owner_pk(user_id: Any) -> int | None:
    """agno's `user_id` (a string) as a user's primary key, or None if it is not one."""
    try:
        return int(user_id)
    except (TypeError, ValueError):
        return None


def title(text: str) -> str:
    """A session name from the first user message: its first line, at most 100 characters."""
    text = text.strip()
    return text.splitlines()[0][:100] if text else ""


def session_record(row: Any, runs: list[dict] | None = None) -> dict:
    """An agno session dict (what `TeamSession.from_dict` reads) from a session row or its values()."""
    get = row.get if isinstance(row, dict) else (lambda k: getattr(row, k))
    data = dict(get("data") or {})
    record = {
        **data,
        "session_id": get("session_id"),
        "session_type": get("session_type"),
        "team_id": get("team_id") or data.get("team_id"),
        "user_id": str(get("user_id")),
        "created_at": epoch(get("created_at")),
        "updated_at": epoch(get("updated_at")),
        "runs": runs or [],
    }
    if get("session_name"):
        record.setdefault("session_data", {})
        record["session_data"] = {**(record["session_data"] or {}), "session_name": get("session_name")}
    return record


def session_fields(session_dict: dict) -> dict:
    """The columns of a session row from agno's session dict (its runs are rows of their own)."""
    data = {k: v for k, v in session_dict.items() if k not in ("session_id", "user_id", "runs", "created_at",
                                                              "updated_at", "session_type")}
    session_data = data.get("session_data") or {}
    return {
        "team_id": session_dict.get("team_id") or "",
        "session_type": session_dict.get("session_type") or "team",
        "data": data,
        "explicit_name": session_data.get("session_name"),
    }


def run_input_text(payload: dict) -> str:
    """The user's message of a stored run payload (agno's `input.input_content`, else its user message)."""
    data = payload.get("input")
    if isinstance(data, dict) and data.get("input_content") is not None:
        content = data["input_content"]
        return content if isinstance(content, str) else str(content)
    for message in reversed(payload.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def run_row(run: Any, run_index: int | None) -> dict:
    """The columns of a run row from an agno run output (or its dict)."""
    payload = run if isinstance(run, dict) else run.to_dict()
    is_team = not payload.get("agent_id") and bool(payload.get("team_id"))
    status = payload.get("status") or "RUNNING"
    status = getattr(status, "value", status)
    return {
        "run_id": payload["run_id"],
        "parent_run_id": payload.get("parent_run_id"),
        "run_type": "team" if is_team else "agent",
        "component_id": (payload.get("team_id") if is_team else payload.get("agent_id")) or "",
        "status": str(status).upper(),
        "run_index": run_index,
        "payload": payload,
        "created_at": from_epoch(payload.get("created_at")),
    }


def running_run_row(*, run_id: str, session_id: str, team_id: str, team_name: str, user_pk: int, message: str,
                    created_at: datetime) -> dict:
    """The row of a team run from its admission on, before agno has stored anything of it: the
    user's message and status RUNNING, in agno's shape (`TeamRunOutput.from_dict` reads it). agno's
    own row replaces it when the run is stored; a run that ends without one keeps this with its
    final status (chat.storage.buffer.take_writes), and a run whose server process died is
    closed with it (chat.runs.reaper)."""
    payload = {"run_id": run_id, "team_id": team_id, "team_name": team_name, "session_id": session_id,
               "user_id": str(user_pk), "status": "RUNNING", "created_at": epoch(created_at),
               "input": {"input_content": message}, "content": None}
    return run_row(payload, None)


def first_team_input(rows: list[dict]) -> str:
    """The user's message of the first top-level team run among run rows (names a new session)."""
    for row in rows:
        if row["run_type"] == "team" and row["parent_run_id"] is None:
            return run_input_text(row["payload"])
    return ""
