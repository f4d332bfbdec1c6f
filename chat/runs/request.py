"""What a transport asks the run service for: a `RunRequest` (with its `Attachment`s), and the
checks of a run request's fields that every transport shares (`run_request_from_fields`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from chat.agents.team import CIRKELLINE_TEAM_ID
from chat.errors import BadRequest
from chat.models import validate_session_id
from chat.payload import load_json


@dataclass
class Attachment:
    """A file sent with a message; `kind` is image, audio, video or document."""

    kind: str
    name: str
    mime_type: str
    content: bytes


@dataclass
class RunRequest:
    """One message to run: whose, on which team (a resolved id: chat.agents.team.resolve_team)
    and session (None: a new one), with what per-run options and files."""

    user_id: int
    message: str
    team_id: str = CIRKELLINE_TEAM_ID
    session_id: str | None = None
    deep_research: bool = False
    session_state: dict | None = None
    dependencies: dict | None = None
    metadata: dict | None = None
    attachments: list[Attachment] = field(default_factory=list)
    # False: forward only content deltas, member events and the terminal event.
    stream_events: bool = True
    # How the client consumes the run (recorded on the usage row).
    streamed: bool = True
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # The user's name when the run started, kept on its usage row (which outlives the account).
    username: str = ""


# --- checking a run request's fields ----------------------------------------------------

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off", ""})

# The attachment kinds a run takes, by MIME type (the API checks files against them, the chat page
# offers them).
MEDIA_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp", "image/bmp",
                        "image/tiff", "image/heic", "image/heif", "image/avif"}),
    "audio": frozenset({"audio/wav", "audio/wave", "audio/x-wav", "audio/mpeg", "audio/mp3", "audio/ogg",
                        "audio/mp4", "audio/m4a", "audio/x-m4a", "audio/aac", "audio/flac", "audio/webm"}),
    "video": frozenset({"video/mp4", "video/webm", "video/quicktime", "video/mpeg", "video/x-flv", "video/3gpp",
                        "video/wmv"}),
    "document": frozenset({"application/pdf", "application/json", "text/plain", "text/markdown", "text/csv",
                           "text/html", "text/xml", "application/xml", "text/rtf",
                           "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                           "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                           "application/msword", "application/vnd.ms-excel"}),
}


def _bool(name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in FALSE:
        return default if value.strip() == "" else False
    raise BadRequest(400, f"'{name}' must be true or false.")


def _json_object(name: str, value: Any) -> dict | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = load_json(value, f"'{name}'", invalid=f"'{name}' must be a JSON object; it is not valid JSON.")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(400, f"'{name}' must be a JSON object.")
    return value


def run_request_from_fields(data: dict, *, user_pk: int, username: str, team_id: str,
                            attachments: list[Attachment]) -> tuple[RunRequest, bool]:
    """The run request in fields any transport decoded (an HTTP body, a websocket frame), checked,
    for the user `user_pk` (`username`), and whether the client wants it streamed."""
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        raise BadRequest(400, "'message' is required and must be a non-empty string.")
    if len(message) > settings.CIRKELLINE_MAX_MESSAGE_CHARS:
        limit = settings.CIRKELLINE_MAX_MESSAGE_CHARS
        raise BadRequest(413, f"'message' is too long: the limit is {limit} characters.")

    user_id = data.get("user_id")
    if user_id not in (None, "") and str(user_id) not in (str(user_pk), username):
        raise BadRequest(403, "'user_id' must be your own: the run always belongs to the authenticated user.")

    session_id = data.get("session_id")
    if session_id in (None, ""):
        session_id = None
    elif not isinstance(session_id, str):
        raise BadRequest(400, "'session_id' must be a string.")
    else:
        validate_session_id(session_id)

    if _bool("background", data.get("background"), False):
        raise BadRequest(400, "Background runs are not supported: stream the run or wait for its result.")

    stream = _bool("stream", data.get("stream"), True)
    run = RunRequest(
        user_id=user_pk,
        username=username,
        team_id=team_id,
        message=message,
        session_id=session_id,
        deep_research=_bool("deep_research", data.get("deep_research"), False),
        session_state=_json_object("session_state", data.get("session_state")),
        dependencies=_json_object("dependencies", data.get("dependencies")),
        metadata=_json_object("metadata", data.get("metadata")),
        attachments=attachments,
        stream_events=_bool("stream_events", data.get("stream_events"), True),
        streamed=stream,
    )
    return run, stream
