"""Server frames of the chat websocket: their JSON, and the one map from failures to error frames.

Run events go out exactly as the SSE stream carries them: the entries of the run's event log
(chat.runs.eventlog: the event's JSON, merged and encoded once, with its `event_index`), each with
`seq` (the same number) spliced in, several to a frame: one websocket message per batch of
entries, as SSE writes one chunk per batch.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import InterfaceError, OperationalError

from chat.errors import BudgetExceeded, CirkellineError, ServerDraining

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's own; the reason is also sent as an error frame
# first, since not every server passes a close reason on).
CLOSE_UNAUTHENTICATED = 4401
# The server is restarting (RFC 6455's "Service Restart"): sent to every socket when a draining
# process stops; clients reconnect (to another process) and resume.
CLOSE_RESTARTING = 1012


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
    refused budget (402) "budget_exceeded", a process shutting down (503) "draining". Anything
    else is a bug: logged, a 500."""
    if isinstance(exc, CirkellineError):
        fields = {("run_status" if name == "status" else name): value for name, value in exc.extra.items()}
        code = ("unauthenticated" if exc.status == 401
                else "budget_exceeded" if isinstance(exc, BudgetExceeded)
                else "draining" if isinstance(exc, ServerDraining) else None)
        return error(exc.status, exc.detail, ref=ref, code=code, **fields, **extra)
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.exception("database unavailable during a websocket frame")
        return error(503, "The database is unavailable right now; please retry shortly.", ref=ref, retry_after=5,
                     **extra)
    logger.error("websocket frame failed", exc_info=exc)
    return error(500, "Internal server error.", ref=ref, **extra)


class RunFrames:
    """The frames of one run for one socket, cut from its log: `seq` is the event's `event_index`
    (from 0, increasing; it skips where text deltas were merged)."""

    def __init__(self, run_id: str, meta: dict, ref: Any = None):
        self.run_id = run_id
        self.meta = meta
        self.ref = ref
        self.seq = -1  # the last event index sent to this socket
        # run and session ids are generated or validated (SESSION_ID_RE): safe to splice, but
        # dumped anyway so this never depends on it.
        self._prefix = (f'{{"type":"events","run_id":{json.dumps(run_id)},'
                        f'"session_id":{json.dumps(meta["session_id"])},"events":[')

    @property
    def session_id(self) -> str:
        return self.meta["session_id"]

    def events(self, entries: list[tuple[int, str, str]]) -> str:
        """One frame for a batch of log entries."""
        # The entry's JSON is an object: splice "seq" in as its first member.
        text = self._prefix + ",".join(f'{{"seq":{number},{data[1:]}' for number, _, data in entries) + "]}"
        self.seq = entries[-1][0]
        return text

    def started(self, *, own: bool = False, joined: bool = False) -> str:
        """`run_started`: what a socket needs to show the run (also to one that joins it late).

        Only the socket that sent the `run` frame (`own`) gets its `ref` back: another tab's refs
        could be the same strings."""
        meta = self.meta
        frame = {
            "type": "run_started", "run_id": self.run_id, "session_id": meta["session_id"],
            "team_id": meta["team_id"], "message": meta["message"], "deep_research": meta["deep_research"],
            "files": meta["files"], "started_at": meta["started_at"], "seq": self.seq,
        }
        if joined:
            frame["joined"] = True  # this socket did not start it; events up to `seq` are not sent again
        if own and self.ref is not None:
            frame["ref"] = self.ref
        return dumps(frame)

    def finished(self, summary: dict | None) -> str:
        """`run_finished`: the outcome, the tokens of the leader and every member, and the cost (USD as
        an exact decimal string; null when the run's models have no price or it is not known yet).
        A run whose worker was lost before it said how it ended has status `error`."""
        summary = summary or {}
        frame = {
            "type": "run_finished", "run_id": self.run_id, "session_id": self.meta["session_id"],
            "status": summary.get("status", "error"), "error_type": summary.get("error_type"),
            "detail": summary.get("detail"), "retry_after": summary.get("retry_after"),
            "saved": summary.get("saved", False), "seq": self.seq, "tokens": summary.get("tokens", {}),
            "duration_ms": summary.get("duration_ms"), "cost": summary.get("cost"),
        }
        return dumps(frame)
