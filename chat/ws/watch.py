"""What a socket that watches a session resumes: the session's live runs, and the runs it names.

A `watch` frame names the session a page shows and, after a reconnect, the last `seq` it got of
each run (`after`: chat.ws.client_frames.after_map). This module decides which runs' logs that
socket may read (the user's own, in that session: live anywhere, or ended while the log is kept);
the consumer joins the session's group (chat.ws.fanout) and streams them (chat.ws.streams). Kept
apart from the consumer because it is the one place that decides whose run a socket may replay.
"""

from __future__ import annotations

from chat.errors import SessionNotFound
from chat.models import ChatSession, validate_session_id
from chat.runs import eventlog
from chat.storage.executor import run_db


async def check_session(user_pk: int, session_id: str) -> None:
    """Raise unless the session is the user's (SessionNotFound) and its id well formed (BadRequest)."""
    validate_session_id(session_id)
    live = await eventlog.live_in_session(user_pk, session_id)
    # A new session is stored when its first run ends; while that run is live it is the user's already.
    if not live and not await run_db(ChatSession.objects.is_owned, user_pk, session_id):
        raise SessionNotFound(session_id)


def is_theirs(log_ref: eventlog.LogRef | None, user_pk: int, session_id: str | None) -> bool:
    """Whether a run's log is of the user's run in the session (any other is never streamed)."""
    return log_ref is not None and log_ref.user_id == user_pk and log_ref.session_id == session_id


async def resumable(user_pk: int, session_id: str, after: dict[str, int]) -> dict[str, eventlog.LogRef]:
    """The session's live runs, and the runs `after` names (ended ones while their log is kept)."""
    found = {ref.run_id: ref for ref in await eventlog.live_in_session(user_pk, session_id)}
    for run_id in after:
        if run_id not in found:
            log_ref = await eventlog.lookup(run_id)
            if is_theirs(log_ref, user_pk, session_id):
                found[run_id] = log_ref
    return found
