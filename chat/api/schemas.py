"""AgentOS-shaped JSON for sessions and runs (field names as agno's AgentOS schemas use them)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from chat.records import run_input_text


def _iso(epoch: Any) -> str | None:
    if isinstance(epoch, (int, float)) and epoch > 0:
        return datetime.fromtimestamp(epoch, tz=UTC).isoformat()
    if isinstance(epoch, datetime):
        return epoch.isoformat()
    return None


def session_summary(record: dict) -> dict:
    """SessionSchema: one row of GET /sessions (no run payloads)."""
    data = record.get("session_data") or {}
    metrics = data.get("session_metrics")
    return {
        "session_id": record["session_id"],
        "session_name": data.get("session_name") or "",
        "session_state": data.get("session_state"),
        "created_at": _iso(record.get("created_at")),
        "updated_at": _iso(record.get("updated_at") or record.get("created_at")),
        "session_type": record.get("session_type") or "team",
        "user_id": record.get("user_id"),
        "agent_id": None,
        "team_id": record.get("team_id"),
        "workflow_id": None,
        "session_summary": record.get("summary"),
        "metrics": metrics,
        "total_tokens": (metrics or {}).get("total_tokens"),
        "metadata": record.get("metadata"),
    }


def session_detail(record: dict) -> dict:
    """TeamSessionDetailSchema: GET /sessions/{id}."""
    data = record.get("session_data") or {}
    metrics = data.get("session_metrics")
    return {
        "session_id": record["session_id"],
        "session_name": data.get("session_name") or "",
        "user_id": record.get("user_id"),
        "team_id": record.get("team_id"),
        "session_summary": record.get("summary"),
        "session_state": data.get("session_state"),
        "metrics": metrics or {},
        "team_data": record.get("team_data"),
        "metadata": record.get("metadata"),
        "chat_history": record.get("chat_history") or [],
        "created_at": _iso(record.get("created_at")),
        "updated_at": _iso(record.get("updated_at") or record.get("created_at")),
        "total_tokens": (metrics or {}).get("total_tokens"),
    }


def run(payload: dict, user_id: str | None = None) -> dict:
    """TeamRunSchema (team runs) or RunSchema (member runs): GET /sessions/{id}/runs and runs/{run_id}."""
    common = {
        "run_id": payload.get("run_id", ""),
        "parent_run_id": payload.get("parent_run_id"),
        "user_id": payload.get("user_id") or user_id,
        "status": payload.get("status"),
        "run_input": run_input_text(payload),
        "content": payload.get("content"),
        "run_response_format": "text" if payload.get("content_type", "str") == "str" else "json",
        "reasoning_content": payload.get("reasoning_content") or "",
        "metrics": payload.get("metrics") or {},
        "messages": payload.get("messages"),
        "tools": payload.get("tools"),
        "events": payload.get("events"),
        "created_at": _iso(payload.get("created_at")),
        "session_state": payload.get("session_state"),
        "images": payload.get("images"),
        "videos": payload.get("videos"),
        "audio": payload.get("audio"),
        "files": payload.get("files"),
    }
    if payload.get("agent_id"):
        return {**common, "agent_id": payload["agent_id"], "agent_session_id": payload.get("session_id")}
    team = {**common, "team_id": payload.get("team_id"), "session_id": payload.get("session_id")}
    if payload.get("status") == "PAUSED":  # what it asks its user (docs/API.md, "Runs that ask you")
        team["requirements"] = payload.get("requirements")
    return team


def page_meta(*, page: int, limit: int, total: int, elapsed_ms: float) -> dict:
    return {
        "page": page,
        "limit": limit,
        "total_pages": math.ceil(total / limit) if limit else 0,
        "total_count": total,
        "search_time_ms": round(elapsed_ms, 2),
    }
