"""A socket's `run` and `continue` frames, turned into calls of the run service.

The websocket's counterpart of the HTTP views' run handling: the frame's fields go through the run
API's own checks (chat.runs.request.run_request_from_fields, chat.runs.pause), the team is
resolved, a run's uploaded files are taken (chat.runs.uploads), and the run service starts or
continues the run. The consumer checks the socket's credentials first and streams the handle's
log; a refusal raises one of chat.errors, which the consumer answers with an error frame.
"""

from __future__ import annotations

from chat import runs
from chat.agents.team import CIRKELLINE_TEAM_ID, resolve_team
from chat.identity import Caller
from chat.runs import uploads
from chat.runs.request import run_request_from_fields

from . import client_frames
from .client_frames import CONTINUE_FIELDS, RUN_FIELDS


async def start(caller: Caller, content: dict) -> runs.RunHandle:
    """Start the run a `run` frame asks for."""
    team_id = content.get("team_id") or CIRKELLINE_TEAM_ID
    request, _ = run_request_from_fields(client_frames.fields(content, RUN_FIELDS), user_pk=caller.pk,
                                         username=caller.username, team_id=str(team_id), attachments=[])
    resolve_team(request.team_id)
    request.attachments = await uploads.take(caller.pk, content.get("files"))
    return await runs.start_run(request)


async def proceed(caller: Caller, content: dict) -> runs.RunHandle:
    """Continue a paused run of the user's with their answers (a `continue` frame's `requirements`)."""
    run_id = client_frames.run_id(content.get("run_id"))
    team_id = resolve_team(str(content.get("team_id") or CIRKELLINE_TEAM_ID))
    request = runs.continue_request_from_fields(client_frames.fields(content, CONTINUE_FIELDS), user_pk=caller.pk,
                                                username=caller.username, team_id=team_id, run_id=run_id)
    request.streamed = True
    return await runs.continue_run(request)
