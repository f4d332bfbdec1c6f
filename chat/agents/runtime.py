"""What the rest of chat needs from agno at run time, as plain functions and names.

Only chat.agents (and the storage adapter) import agno; the run service, the transports and the
delegation detector use these instead:
- `stream_team_run` starts a team run as agno's event stream, `is_run_output` tells agno's final
  run output from its events, `cancel_run` sets agno's cooperative cancel flag;
- `cancelled_event` / `error_event` / `completed_event` build the terminal events agno itself
  would send;
- `RunEvent` / `TeamRunEvent` are agno's own enums of event names (member runs / the team run):
  compare an event's `.event` with `.value` (agno's events carry the plain string, and a str
  enum member hashes by its name, so only the values work in sets);
- `chat_history` is agno's view of a stored session as chat messages (GET /sessions/{id}).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from agno.media import Audio, File, Image, Video
from agno.run.agent import RunEvent
from agno.run.cancel import cancel_run as _agno_cancel_run
from agno.run.team import RunCancelledEvent, RunCompletedEvent, RunErrorEvent, TeamRunEvent, TeamRunOutput
from agno.session import TeamSession

__all__ = [
    "CONTENT_EVENTS",
    "DELEGATE_TOOL",
    "DELEGATION_TOOLS",
    "MODEL_REQUEST_COMPLETED",
    "RunEvent",
    "TeamRunEvent",
    "cancel_run",
    "cancelled_event",
    "chat_history",
    "completed_event",
    "error_event",
    "is_run_output",
    "stream_team_run",
]

# agno's delegation tools (agno.team._default_tools names them; agno has no constant for them).
DELEGATE_TOOL = "delegate_task_to_member"
DELEGATION_TOOLS = frozenset({DELEGATE_TOOL, "delegate_task_to_members"})
# Text deltas of a member run and of the team run.
CONTENT_EVENTS = frozenset({RunEvent.run_content.value, TeamRunEvent.run_content.value})
# One provider call finished (with its tokens), by a member or by the leader.
MODEL_REQUEST_COMPLETED = frozenset({RunEvent.model_request_completed.value,
                                     TeamRunEvent.model_request_completed.value})


def _media(attachments: Iterable[Any]) -> dict[str, list]:
    """agno media keyword arguments (images, audio, videos, files) for a run's attachments
    (objects with kind, name, mime_type and content: chat.runs.request.Attachment)."""
    media: dict[str, list] = {}
    for item in attachments:
        fmt = item.mime_type.split("/")[-1]
        if item.kind == "image":
            media.setdefault("images", []).append(Image(content=item.content, mime_type=item.mime_type, format=fmt))
        elif item.kind == "audio":
            media.setdefault("audio", []).append(Audio(content=item.content, mime_type=item.mime_type, format=fmt))
        elif item.kind == "video":
            media.setdefault("videos", []).append(Video(content=item.content, mime_type=item.mime_type, format=fmt))
        else:
            media.setdefault("files", []).append(
                File(content=item.content, filename=item.name, mime_type=item.mime_type)
            )
    return media


def stream_team_run(team: Any, *, message: str, session_id: str, user_id: int, run_id: str,
                    session_state: dict | None, dependencies: dict | None, metadata: dict | None,
                    attachments: Iterable[Any]) -> AsyncIterator[Any]:
    """agno's event stream of one team run: every event (the team's and its members'), then its
    TeamRunOutput (`is_run_output`). The only way Cirkelline runs a team: `team.arun`, async."""
    return team.arun(
        input=message,
        stream=True,
        stream_events=True,
        yield_run_output=True,
        session_id=session_id,
        user_id=str(user_id),
        run_id=run_id,
        session_state=session_state,
        dependencies=dependencies,
        metadata=metadata,
        **_media(attachments),
    )


def is_run_output(item: Any) -> bool:
    """Whether an item of `stream_team_run` is the run's final output rather than an event."""
    return isinstance(item, TeamRunOutput)


def cancel_run(run_id: str) -> None:
    """Set agno's cooperative cancel flag for a run (member runs check it between chunks)."""
    _agno_cancel_run(run_id)


def cancelled_event(*, run_id: str, session_id: str, team_id: str, team_name: str, content: str | None) -> Any:
    """A `TeamRunCancelled` event, as agno sends when it cancels a run itself."""
    return RunCancelledEvent(run_id=run_id, session_id=session_id, team_id=team_id, team_name=team_name,
                             reason="Run cancelled", content=content)


def error_event(*, run_id: str, session_id: str, team_id: str, team_name: str, content: str, error_type: str,
                retry_after: float | None = None) -> Any:
    """A `TeamRunError` event; `retry_after` (seconds) goes into its `additional_data`."""
    event = RunErrorEvent(run_id=run_id, session_id=session_id, team_id=team_id, team_name=team_name,
                          content=content, error_type=error_type, error_id=error_type)
    if retry_after is not None:
        event.additional_data = {"retry_after": retry_after}
    return event


def completed_event(*, run_id: str, session_id: str, team_id: str, team_name: str, content: Any,
                    content_type: str = "str", created_at: int | None = None) -> Any:
    """A `TeamRunCompleted` event carrying the run's whole answer (a stored run, replayed)."""
    event = RunCompletedEvent(run_id=run_id, session_id=session_id, team_id=team_id, team_name=team_name,
                              content=content, content_type=content_type)
    if created_at is not None:
        event.created_at = created_at
    return event


def chat_history(record: dict) -> list[dict]:
    """agno's chat history of a stored session record that carries all its runs (as dicts)."""
    session = TeamSession.from_dict(dict(record, runs=[dict(r) for r in record["runs"]]))
    return [m.to_dict() for m in session.get_chat_history()] if session else []
