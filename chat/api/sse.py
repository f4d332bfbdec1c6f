"""Server-sent events as AgentOS sends them: `event: <name>` and one line of compact JSON per frame.

`stream` is a run's response body: every batch of waiting events (merged by chat.runs.events.
coalesce) written as one chunk, and always exactly one terminal frame at the end, whatever
happens; the JSON is chat.agents.agno_overrides.event_json's (agno's bytes, cheaper).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from chat.agents.agno_overrides import event_json
from chat.agents.runtime import TeamRunEvent
from chat.runs import RunHandle, teams
from chat.runs.events import coalesce
from metrics.models import RunStatus

logger = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
STREAM_FAILED = ("Something went wrong while sending this run's events, so the stream was ended and the run "
                 "stopped. Please try again.")
_RUN_ERROR = TeamRunEvent.run_error.value

def sse_frame(event: Any) -> bytes:
    """One AgentOS SSE frame: `event: <name>` and one line of compact JSON."""
    # "replace": a lone surrogate from a provider has no UTF-8 form; it becomes "?" rather than
    # breaking the stream.
    return f"event: {event.event}\ndata: {event_json(event)}\n\n".encode("utf-8", "replace")


def error_frame(*, run_id: str, session_id: str, team_id: str, team_name: str, content: str) -> bytes:
    """A terminal `TeamRunError` frame (`error_type: internal`), built without `event_json`.

    Sent when sending a run's own events failed: it must not fail the same way, so it is a few
    plain strings through json.dumps (ASCII output: nothing in it can fail to encode).
    """
    data = {"created_at": int(time.time()), "event": _RUN_ERROR, "team_id": team_id, "team_name": team_name,
            "run_id": run_id, "session_id": session_id, "nested_depth": 0, "content": content,
            "error_type": "internal", "error_id": "internal"}
    return f"event: {_RUN_ERROR}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode("ascii")


async def stream(handle: RunHandle) -> AsyncIterator[bytes]:
    """The run's events as SSE frames, ending with exactly one terminal frame whatever happens.

    If sending fails (encoding an event, merging deltas, reading the run's events), the run is
    stopped and, once its rows are written, one `TeamRunError` of our own ends the stream: the
    failed batch was not sent, so no terminal frame of the run's own went out before it. Without
    this the response would stop mid-stream with no terminal frame and the connection stay open.
    """
    try:
        async for batch in handle.event_batches():
            yield b"".join(sse_frame(event) for event in coalesce(batch))
    except Exception:
        logger.exception("run %s: sending its events failed; ending the stream", handle.run_id)
        try:
            handle.abort(RunStatus.ERROR)
            await handle.wait()
        except Exception:  # noqa: BLE001 - the client still gets its terminal frame
            logger.exception("run %s: stopping it after a stream failure failed", handle.run_id)
        yield error_frame(run_id=handle.run_id, session_id=handle.session_id, team_id=handle.team_id,
                          team_name=teams.team_name(handle.team_id), content=STREAM_FAILED)
    except BaseException:
        # The client went away (Django cancels the response, or closes this generator): stop
        # the run. Its rows are still written by the run task.
        handle.abort(RunStatus.CANCELLED)
        raise
