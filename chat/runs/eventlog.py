"""A streamed run's event log: its events, numbered and encoded once, for every reader of the run.

The client that started a run, a resumed stream (`POST .../runs/{run_id}/resume`, on any worker),
another tab watching the session, a page that reconnects after a drop: all read the same log, so
they see the same frames with the same `event_index`.

- Numbering: every event a run publishes (chat.runs.handle) gets the next index, from 0, as
  AgentOS numbers its events. Consecutive text deltas waiting together are merged into one entry
  (chat.runs.events.coalesce_numbered), which carries the index of the last delta in it; so indexes
  only increase, and may skip (AgentOS's contract too: "strictly increasing, not gapless").
  Resuming after index `i` returns every entry whose index is above `i`: nothing is sent twice and
  nothing is skipped, whatever the merging.
- Encoding: an entry is (index, event name, the event's JSON with `event_index` in it), encoded
  once, when the run's events are taken in (one callback per loop iteration per run with new
  events: the events that waited together are merged). SSE and websocket frames are cut from it.
- Where: this process's memory holds the log of every live run it executes. With `REDIS_URL`, the
  log also goes to a Redis Stream per run (chat.runs.eventlog_redis: one pipelined round trip for
  every run with new entries, bounded length, expiring CIRKELLINE_EVENT_LOG_TTL seconds after the
  run ended); readers in other processes mirror it from there, one mirror per run and process,
  all of a process's mirrors followed by one blocking Redis read. Without Redis, an ended run's
  log stays in this process for CIRKELLINE_EVENT_LOG_TTL seconds (at most RETAINED_RUNS of them);
  with Redis, a few seconds (while its end is on its way to Redis).
- The end: when a run ends, its log gets its terminal event and a summary (status, tokens, cost:
  the websocket's `run_finished`). `close()` ends the log of a run whose worker is gone (another
  process calls it with the terminal event it decided on).

This module writes a live run's log and finds any run's log: the writer, this process's logs,
`LogRef`. What it builds on lives apart: the entries and their encoding (chat.runs.logentries),
one log in memory and its readers (chat.runs.runlog), the Redis side (chat.runs.eventlog_redis).

Public API: `open_for`, `lookup`, `live_in_session`, `close`; `LogRef.reading()` /
`RunLog.follow(after)` to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from metrics.models import RunStatus

from . import eventlog_redis
from .events import coalesce_numbered
from .logentries import Entry, encode, error_entry, terminal_entry
from .runlog import NO_RUN, OwnedByMeta, RunLog

if TYPE_CHECKING:
    from .handle import RunHandle

logger = logging.getLogger(__name__)

# Ended logs kept in this process without Redis, at most (the oldest go first).
RETAINED_RUNS = 1000


class _Writer:
    """Takes a live run's published events into its log: merged, numbered, encoded, once per loop
    iteration, and handed to Redis (when configured) and to the log's readers."""

    def __init__(self, handle: RunHandle, log: RunLog, sink: Any):
        self.handle = handle
        self.log = log
        self.sink = sink
        self.cursor = 0
        self.scheduled = False
        self.broken = False

    def poke(self) -> None:
        """New events were published: take them in at the next loop iteration (once, however many)."""
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.drain, context=NO_RUN)

    def drain(self) -> None:
        self.scheduled = False
        handle, log = self.handle, self.log
        raw = handle._raw
        start, end = self.cursor, len(raw)
        self.cursor = end
        if start < end and not self.broken and not log.ended:
            try:
                entries = [encode(number, event) for number, event in coalesce_numbered(raw[start:end],
                                                                                     handle.index_base + start)]
            except Exception:  # noqa: BLE001 - a bug encoding an event: stop the run, end its log honestly
                logger.exception("run %s: encoding its events failed; the run is stopped", handle.run_id)
                self.broken = True
                handle.abort(RunStatus.ERROR)
            else:
                log.add(entries)
                if self.sink is not None:
                    self.sink.add(handle.run_id, entries)
        if handle._closed and self.cursor == len(raw):
            self.finish()

    def finish(self) -> None:
        handle, log = self.handle, self.log
        if log.ended:  # closed already (chat.runs.eventlog.close)
            return
        last: list[Entry] = []
        if self.broken:
            # The run's own terminal event could not be sent: ours ends the log in its place.
            number = max(handle.event_count - 1, log.last_index + 1)
            last = [error_entry(number, run_id=handle.run_id, session_id=handle.session_id, team_id=handle.team_id,
                                team_name=log.meta.get("team_name", handle.team_id))]
        _end(log, last, summary_of(handle), self.sink)


def summary_of(handle: RunHandle) -> dict:
    """How the run ended, for the websocket's `run_finished`: status, error, tokens, duration, cost."""
    result = handle.result
    if result is None:
        return {}
    return {
        "status": result.status, "error_type": result.error_type or None, "detail": result.message or None,
        "retry_after": result.retry_after, "saved": not result.storage_failed,
        "tokens": dict(handle.account.tokens), "duration_ms": int(handle.account.elapsed() * 1000),
        "cost": None if handle.cost is None else str(handle.cost),
    }


# --- this process's logs --------------------------------------------------------------------

_live: dict[str, RunLog] = {}  # logs of runs this process executes
_kept: OrderedDict[str, tuple[RunLog, float]] = OrderedDict()  # ended logs, without Redis: (log, expiry)


def _end(log: RunLog, last: list[Entry], summary: dict, sink: Any) -> None:
    """End a log of this process's with its `last` entries and `summary`, here and (with a sink)
    in Redis, where readers in other processes see the end at once."""
    if last:
        log.add(last)
        if sink is not None:
            sink.add(log.run_id, last)
    log.end(summary)
    if sink is not None:
        sink.end(log.run_id, log.meta, summary)
    _ended(log, kept=sink is None)


def _ended(log: RunLog, *, kept: bool) -> None:
    """An ended log stays here CIRKELLINE_EVENT_LOG_TTL seconds without Redis; with Redis, a few
    seconds, while its end is on its way to Redis, so a reader here never sees it live again."""
    _live.pop(log.run_id, None)
    keep_for = settings.CIRKELLINE_EVENT_LOG_TTL if kept else 10.0
    _kept[log.run_id] = (log, time.monotonic() + keep_for)
    _prune()


def _prune() -> None:
    now = time.monotonic()
    while _kept:
        run_id, (_, expiry) = next(iter(_kept.items()))
        if expiry > now and len(_kept) <= RETAINED_RUNS:
            break
        del _kept[run_id]


def _local(run_id: str) -> RunLog | None:
    log = _live.get(run_id)
    if log is not None:
        return log
    kept = _kept.get(run_id)
    if kept is None:
        return None
    if kept[1] <= time.monotonic():
        _prune()
        return None
    return kept[0]


def meta_of(handle: RunHandle, team_name: str) -> dict:
    request = handle.request
    return {
        "user_id": handle.user_id, "session_id": handle.session_id, "team_id": handle.team_id,
        "team_name": team_name, "message": request.message, "deep_research": request.deep_research,
        "files": [{"name": a.name, "kind": a.kind} for a in request.attachments],
        "started_at": handle.started_at.isoformat(), "new_session": request.session_id is None,
    }


async def open_for(handle: RunHandle, *, team_name: str, lifetime: float) -> RunLog:
    """Start the log of a streamed run (before its task starts). With Redis, its record is written
    before this returns, so a reader anywhere that hears of the run finds it."""
    log = RunLog(handle.run_id, meta_of(handle, team_name))
    sink = eventlog_redis.sink() if settings.REDIS_URL else None
    if sink is not None:
        await sink.open(handle.run_id, log.meta, lifetime=lifetime + settings.CIRKELLINE_EVENT_LOG_TTL)
    _live[handle.run_id] = log
    handle.log = log
    handle._log_writer = _Writer(handle, log, sink)
    return log


# --- reading ---------------------------------------------------------------------------------


@dataclass
class LogRef(OwnedByMeta):
    """A run's log found somewhere: its record (`meta`) and whether it ended; `reading()` to read it."""

    run_id: str
    meta: dict
    ended: bool
    local: RunLog | None = None
    _mirror: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, log: RunLog) -> LogRef:
        return cls(log.run_id, log.meta, log.ended, local=log)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[RunLog]:
        """The log, ready to read: this process's own, or a mirror of the Redis Stream holding
        everything it had when this was entered (and following it live until its end)."""
        if self.local is not None:
            yield self.local
            return
        mirror = await eventlog_redis.mirrors().acquire(self.run_id, lambda: RunLog(self.run_id, self.meta))
        try:
            yield mirror
        finally:
            eventlog_redis.mirrors().release(self.run_id)


async def lookup(run_id: str) -> LogRef | None:
    """The run's log, in this process or (with Redis) anywhere; None when there is none (never
    streamed, or ended more than CIRKELLINE_EVENT_LOG_TTL seconds ago). The caller checks the owner."""
    log = _local(run_id)
    if log is not None:
        return LogRef.of(log)
    if not settings.REDIS_URL:
        return None
    found = await eventlog_redis.read_meta(run_id)
    if found is None:
        return None
    meta, ended = found
    return LogRef(run_id, meta, ended)


async def live_in_session(user_id: int, session_id: str) -> list[LogRef]:
    """Logs of the user's runs in the session that have not ended, in every process."""
    refs = {log.run_id: LogRef.of(log) for log in _live.values()
            if log.user_id == user_id and log.session_id == session_id and not log.ended}
    if settings.REDIS_URL:
        for run_id, (meta, ended) in (await eventlog_redis.live_runs(user_id, session_id)).items():
            local = _local(run_id)  # ended here, its end maybe not in Redis yet
            if run_id not in refs and not ended and (local is None or not local.ended):
                refs[run_id] = LogRef(run_id, meta, ended)
    return sorted(refs.values(), key=lambda ref: ref.meta.get("started_at", ""))


async def close(run_id: str, terminal: Any, *, summary: dict, index: int | None = None) -> bool:
    """End the log of a run whose worker is gone, with `terminal` (an agno event, or a dict with its
    `event`) as its last entry, numbered `index` (default: after the log's last entry), and
    `summary` (run_finished's fields) as its outcome. Readers everywhere get both. False if the
    log had ended already, or no log of the run exists."""
    log = _live.get(run_id)
    if log is not None:  # the run is (was) this process's: end it here, and in Redis after
        if log.ended:
            return False
        entry = terminal_entry(log.last_index + 1 if index is None else index, terminal)
        _end(log, [entry], summary, eventlog_redis.sink() if settings.REDIS_URL else None)
        return True
    if not settings.REDIS_URL:
        return False
    return await eventlog_redis.close_elsewhere(
        run_id, lambda number: terminal_entry(number if index is None else index, terminal), summary)


