"""Server-sent events as AgentOS sends them: `event: <name>` and one line of compact JSON per frame,
each event carrying its `event_index` (also as the frame's `id:`, so a standard `Last-Event-ID`
names it).

`stream` is a run's response body: its event log (chat.runs.eventlog), every batch of entries
written as one chunk, ending with exactly one terminal frame whatever happens. `resume` is the
body of `POST /teams/{team_id}/runs/{run_id}/resume`, with AgentOS's `catch_up` / `subscribed` /
`replay` notices (chat.runs.resume says which case a run is in).

Both send a heartbeat while a live run is quiet: the comment line `: ping` once nothing has been
written for CIRKELLINE_SSE_HEARTBEAT_SECONDS, so that a proxy's idle timeout never cuts a run whose
members work silently for minutes. SSE readers ignore comments (the standard says so; agno's
AgentOSClient reads only `data:` lines, agent-ui only JSON objects).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable

from django.conf import settings

from chat.runs import RunHandle, drain, teams
from chat.runs.logentries import Entry, encode, error_entry
from chat.runs.resume import STORED_REPLAY_MESSAGE, Found, stored_terminal, summary_status
from chat.runs.runlog import RunLog
from metrics.models import RunStatus

logger = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PING = b": ping\n\n"

# Responses following a run of this process, each a future done when it has sent its last frame:
# a draining process stops only after they did (chat.runs.drain), so no client loses its run's end.
_streams: set[asyncio.Future] = set()


async def _streams_sent() -> None:
    if _streams:
        await asyncio.wait(set(_streams))


drain.when_drained(_streams_sent)


def _streaming() -> asyncio.Future:
    done = asyncio.get_running_loop().create_future()
    _streams.add(done)
    return done


def _sent(done: asyncio.Future) -> None:
    _streams.discard(done)
    if not done.done():
        done.set_result(None)


def frames(entries: Iterable[Entry]) -> bytes:
    """SSE frames of log entries: `id: <event_index>`, `event: <name>`, `data: <JSON>`."""
    return "".join(f"id: {number}\nevent: {name}\ndata: {data}\n\n" for number, name, data in entries).encode()


def notice(name: str, data: dict) -> bytes:
    """One of AgentOS's resume notices (`catch_up`, `subscribed`, `replay`), encoded as AgentOS does."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def stream(handle: RunHandle) -> AsyncIterator[bytes]:
    """The run's events as SSE frames, ending with exactly one terminal frame whatever happens.

    A failure encoding the run's events ends its log with a `TeamRunError` of our own (chat.runs.
    eventlog); one reading it here stops the run and, once its rows are written, ends this stream
    with one. A client that goes away leaves the run going (it can be resumed), unless
    CIRKELLINE_ON_DISCONNECT is `cancel`.
    """
    done = _streaming()
    try:
        # An empty batch: the log was quiet for the heartbeat's interval.
        async for batch in handle.log.follow(idle=settings.CIRKELLINE_SSE_HEARTBEAT_SECONDS):
            yield frames(batch) if batch else PING
    except Exception:
        logger.exception("run %s: sending its events failed; ending the stream", handle.run_id)
        try:
            handle.abort(RunStatus.ERROR)
            await handle.wait()
        except Exception:  # noqa: BLE001 - the client still gets its terminal frame
            logger.exception("run %s: stopping it after a stream failure failed", handle.run_id)
        yield frames([error_entry(handle.event_count, run_id=handle.run_id, session_id=handle.session_id,
                                  team_id=handle.team_id, team_name=teams.team_name(handle.team_id))])
    except BaseException:
        # The client went away (Django cancels the response, or closes this generator).
        if settings.CIRKELLINE_ON_DISCONNECT == "cancel":
            handle.abort(RunStatus.CANCELLED)
        raise
    finally:
        _sent(done)


async def resume(found: Found, after: int | None) -> AsyncIterator[bytes]:
    """A resumed stream, in AgentOS's three cases (chat.runs.resume)."""
    run_id = found.run_id
    if found.ref is not None:
        # A live run of this process's: a drain waits for this stream's end too.
        done = _streaming() if found.ref.local is not None and not found.ref.local.ended else None
        try:
            async with found.ref.reading() as log:
                if log.ended:
                    body = _replay_log(log, run_id, after)
                else:
                    body = _follow_live(log, run_id, after)
                async for chunk in body:
                    yield chunk
        finally:
            if done is not None:
                _sent(done)
        return
    if found.stored is None or (replayed := stored_terminal(found)) is None:
        yield notice("replay", _no_events(found))
        return
    index, event = replayed
    entries = [] if after is not None and index <= after else [encode(index, event)]
    yield notice("replay", {"event": "replay", "run_id": run_id, "status": found.status,
                            "total_events": len(entries), "message": STORED_REPLAY_MESSAGE})
    if entries:
        yield frames(entries)


async def _replay_log(log: RunLog, run_id: str, after: int | None) -> AsyncIterator[bytes]:
    missed = log.since(-1 if after is None else after)
    status = summary_status(log.summary)
    yield notice("replay", {
        "event": "replay", "run_id": run_id, "status": status, "total_events": len(missed),
        "total_buffered": len(log.entries), "last_event_index_requested": -1 if after is None else after,
        "message": f"Run {status}. Replaying {len(missed)} missed events (of {len(log.entries)} total).",
    })
    if missed:
        yield frames(missed)


async def _follow_live(log: RunLog, run_id: str, after: int | None) -> AsyncIterator[bytes]:
    last = -1 if after is None else after
    missed = log.since(last)
    count = len(log.entries)
    if missed:
        yield notice("catch_up", {"event": "catch_up", "run_id": run_id, "status": "running",
                                  "missed_events": len(missed), "current_event_count": count,
                                  "message": f"Catching up on {len(missed)} missed events."})
        yield frames(missed)
        last = missed[-1][0]
    yield notice("subscribed", {"event": "subscribed", "run_id": run_id, "status": "running",
                                "current_event_count": count,
                                "message": "Subscribed to team run. Receiving live events."})
    async for batch in log.follow(last, idle=settings.CIRKELLINE_SSE_HEARTBEAT_SECONDS):
        yield frames(batch) if batch else PING


def _no_events(found: Found) -> dict:
    """AgentOS's answer for a run without an event stream (answered with stream=false)."""
    if found.status in ("PENDING", "RUNNING"):
        message = (f"Run is {found.status} and was submitted without streaming, so it has no event stream to "
                   "attach to. Poll the run endpoint for its result.")
    else:
        message = (f"Run {found.status} with no stored events: a run submitted without streaming keeps only "
                   "its final output.")
    return {"event": "replay", "run_id": found.run_id, "status": found.status, "total_events": 0,
            "message": message}
