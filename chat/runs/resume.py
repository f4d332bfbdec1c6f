"""Resuming a run's stream (`POST /teams/{team_id}/runs/{run_id}/resume`, the websocket's `watch`):
where the run's events are, checked to be the caller's, in AgentOS's three cases.

1. The run is live (on this worker or another): its log (chat.runs.eventlog), caught up from the
   client's last event index, then followed live.
2. It ended and its log is still kept (CIRKELLINE_EVENT_LOG_TTL): the log, replayed.
3. Only the database has it: the stored run, replayed as its terminal event (`TeamRunCompleted`
   with the whole answer, `TeamRunError`, `TeamRunCancelled`) under the index it was streamed with.
   A run answered with `stream=false` has no events (AgentOS: "a run submitted without streaming
   keeps only its final output"), live or not.

The transports frame what `find_run` returns; this module decides what it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat.agents.runtime import cancelled_event, completed_event, error_event
from chat.errors import RunNotFound
from chat.models import ChatRun
from chat.storage.executor import run_db
from metrics.models import RunUsage

from . import eventlog
from .admission import coordinator
from .handle import live_run
from .outcome import ERROR_MESSAGES, LOST_EVENT_INDEX, WORKER_LOST
from .result import AGNO_STATUS
from .teams import team_name

# The replay of a stored run says what AgentOS's does, whatever the run's status.
STORED_REPLAY_MESSAGE = "Run completed. Replaying stored events from database."


@dataclass
class Found:
    """Where a run's events are: its log (`ref`), else its stored row (`stored`), else neither
    (a run answered with stream=false, live: `status` RUNNING)."""

    run_id: str
    status: str  # AgentOS's RunStatus value (RUNNING, COMPLETED, ERROR, CANCELLED)
    ref: eventlog.LogRef | None = None
    stored: dict | None = None
    error_type: str = ""
    # A streamed run closed because its worker died (its terminal has no index of its own).
    interrupted: bool = False


async def find_run(user_id: int, team_id: str, run_id: str, session_id: str | None = None) -> Found:
    """The user's team run `run_id` (of `team_id`, and of `session_id` when given), wherever it is.

    Raises RunNotFound when it does not exist or is not the user's (never saying which).
    """
    ref = await eventlog.lookup(run_id)
    if ref is not None:
        if ref.user_id != user_id or ref.meta.get("team_id") != team_id or session_id not in (None, ref.session_id):
            raise RunNotFound(run_id)
        return Found(run_id, "RUNNING" if not ref.ended else "COMPLETED", ref=ref)
    handle = live_run(run_id)
    if handle is not None:  # live here, without a log: answered with stream=false
        if handle.user_id != user_id or handle.team_id != team_id or session_id not in (None, handle.session_id):
            raise RunNotFound(run_id)
        return Found(run_id, "RUNNING")
    stored = await run_db(ChatRun.objects.find, user_id, run_id)
    if stored is None:
        # Live on another worker without a log (stream=false): its owner is known, its session not.
        if session_id is None and await coordinator().owner_elsewhere(run_id) == user_id:
            return Found(run_id, "RUNNING")
        raise RunNotFound(run_id)
    payload = stored["payload"] or {}
    if (stored.get("parent_run_id") or payload.get("agent_id") or payload.get("team_id") not in (None, team_id)
            or session_id not in (None, stored["session__session_id"])):
        raise RunNotFound(run_id)
    status = str(stored["status"] or payload.get("status") or "COMPLETED").upper()
    found = Found(run_id, status, stored=stored)
    if status == "ERROR":
        error_type, streamed = await run_db(_error_type, run_id) or ("internal", False)
        found.error_type = error_type or "internal"
        found.interrupted = found.error_type == WORKER_LOST and streamed
    return found


def _error_type(run_id: str) -> tuple[str, bool] | None:
    return RunUsage.objects.filter(run_id=run_id).values_list("error_type", "streamed").first()


def stored_terminal(found: Found) -> tuple[int, Any] | None:
    """A stored run's terminal event and the index it was streamed with; None when it was not streamed.

    A streamed run whose worker died (closed by chat.runs.reaper) has the index its log's
    terminal was given, LOST_EVENT_INDEX: after whatever its client had.
    """
    payload = found.stored["payload"] or {}
    index = payload.get("last_event_index")
    if index is None and found.interrupted:
        index = LOST_EVENT_INDEX
    if index is None:
        return None
    team_id = payload.get("team_id") or found.stored.get("component_id") or ""
    common = {"run_id": found.run_id, "session_id": found.stored["session__session_id"], "team_id": team_id,
              "team_name": payload.get("team_name") or team_name(team_id)}
    content = payload.get("content")
    if found.status == "CANCELLED":
        event = cancelled_event(**common, content=content if isinstance(content, str) and content else None)
    elif found.status == "ERROR":
        error_type = found.error_type if found.error_type in ERROR_MESSAGES else "internal"
        event = error_event(**common, content=ERROR_MESSAGES.get(error_type, ERROR_MESSAGES["internal"]),
                            error_type=found.error_type or "internal")
    else:
        event = completed_event(**common, content=content, content_type=payload.get("content_type") or "str",
                                created_at=payload.get("created_at"))
    return int(index), event


def summary_status(summary: dict | None) -> str:
    """An ended log's status in AgentOS's terms (an unknown end: its worker is gone, ERROR)."""
    status = (summary or {}).get("status")
    return AGNO_STATUS.get(status, "ERROR") if status else "ERROR"
