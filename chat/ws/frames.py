"""Server frames of the chat websocket: their JSON, and the one map from failures to error frames.

Run events go out exactly as the SSE stream carries them (`chat.agents.agno_overrides.event_json`, after the
same `coalesce` of waiting text deltas), each with its per-run `seq` spliced in, several to a
frame: one websocket message per batch of waiting events, as SSE writes one chunk per batch.
The frame text is built once and sent as is to the socket that started the run and to the
owner's other sockets watching the session (chat.ws.fanout), so no event is encoded twice.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import InterfaceError, OperationalError

from chat.agents.agno_overrides import event_json
from chat.errors import BudgetExceeded, CirkellineError
from chat.payload import has_lone_surrogate
from chat.runs import RunHandle, RunResult
from chat.runs.events import coalesce

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's own; the reason is also sent as an error frame
# first, since not every server passes a close reason on).
CLOSE_UNAUTHENTICATED = 4401


def dumps(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def error(status: int, detail: str, *, ref: Any = None, code: str | None = None, **extra: Any) -> dict:
    """An error frame: the HTTP status the API would answer, and a sentence for a person."""
    frame = {"type": "error", "status": status, "detail": detail}
    if code:
        frame["code"] = code
    if ref is not None:
        frame["ref"] = ref
    frame.update(extra)
    return frame


def error_for(exc: BaseException, *, ref: Any = None, **extra: Any) -> dict:
    """The error frame for one of the app's refusals (chat.errors): the status, sentence and extra
    fields the HTTP API answers with (chat.api.errors), except that an extra `status` (the run's)
    is `run_status` here, where `status` is the HTTP one; a 401 has `code` "unauthenticated", a
    refused budget (402) "budget_exceeded". Anything else is a bug: logged, a 500."""
    if isinstance(exc, CirkellineError):
        fields = {("run_status" if name == "status" else name): value for name, value in exc.extra.items()}
        code = ("unauthenticated" if exc.status == 401
                else "budget_exceeded" if isinstance(exc, BudgetExceeded) else None)
        return error(exc.status, exc.detail, ref=ref, code=code, **fields, **extra)
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.exception("database unavailable during a websocket frame")
        return error(503, "The database is unavailable right now; please retry shortly.", ref=ref, retry_after=5,
                     **extra)
    logger.error("websocket frame failed", exc_info=exc)
    return error(500, "Internal server error.", ref=ref, **extra)


class RunFrames:
    """The frames of one run, numbering its events (`seq` starts at 1 and never skips)."""

    def __init__(self, handle: RunHandle, ref: Any = None):
        self.handle = handle
        self.ref = ref
        self.seq = 0
        self.new_session = handle.request.session_id is None  # its id was generated for this run
        # run and session ids are generated or validated (SESSION_ID_RE): safe to splice, but
        # dumped anyway so this never depends on it.
        self._prefix = (f'{{"type":"events","run_id":{json.dumps(handle.run_id)},'
                        f'"session_id":{json.dumps(handle.session_id)},"events":[')

    def events(self, batch: list[Any]) -> str:
        """One frame for a batch of the run's events (merged like the SSE stream's)."""
        parts = []
        seq = self.seq
        for event in coalesce(batch):
            seq += 1
            # event_json is an object: splice "seq" in as its first member.
            parts.append(f'{{"seq":{seq},{event_json(event)[1:]}')
        self.seq = seq
        text = self._prefix + ",".join(parts) + "]}"
        if has_lone_surrogate(text):  # a provider sent one: it has no UTF-8 form (SSE does the same)
            text = text.encode("utf-8", "replace").decode("utf-8")
        return text

    def started(self, *, own: bool = False, joined: bool = False) -> str:
        """`run_started`: what a socket needs to show the run (also to one that joins it late).

        Only the socket that sent the `run` frame (`own`) gets its `ref` back: another tab's refs
        could be the same strings."""
        handle = self.handle
        request = handle.request
        frame = {
            "type": "run_started", "run_id": handle.run_id, "session_id": handle.session_id,
            "team_id": handle.team_id, "message": request.message, "deep_research": request.deep_research,
            "files": [{"name": a.name, "kind": a.kind} for a in request.attachments],
            "started_at": handle.started_at.isoformat(), "seq": self.seq,
        }
        if joined:
            frame["joined"] = True  # events before `seq` were not sent to this socket
        if own and self.ref is not None:
            frame["ref"] = self.ref
        return dumps(frame)

    def finished(self, result: RunResult) -> str:
        """`run_finished`: the outcome, the tokens of the leader and every member, and the cost (USD as
        an exact decimal string; null when the run's models have no price or it is not known yet)."""
        handle = self.handle
        frame = {
            "type": "run_finished", "run_id": handle.run_id, "session_id": handle.session_id,
            "status": result.status, "error_type": result.error_type or None, "detail": result.message or None,
            "retry_after": result.retry_after, "saved": not result.storage_failed, "seq": self.seq,
            "tokens": dict(handle.account.tokens), "duration_ms": int(handle.account.elapsed() * 1000),
            "cost": None if handle.cost is None else str(handle.cost),
        }
        return dumps(frame)
