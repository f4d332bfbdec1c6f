"""What a transport asks the run service for: a `RunRequest` (with its `Attachment`s)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from chat.agents.team import CIRKELLINE_TEAM_ID


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
