"""The Redis side of run event logs (chat.runs.eventlog), when `REDIS_URL` is set.

Keys (under CIRKELLINE_REDIS_PREFIX):
- `<prefix>:log:<run id>`: a Redis Stream. Each stream entry holds a batch of log entries, one per
  line, `<event_index> <event name> <JSON>` (chat.runs.logentries.lines), in field `b`; the
  last holds the run's summary in field `end`. Bounded with `XADD MAXLEN ~`
  (CIRKELLINE_EVENT_LOG_MAXLEN batches).
- `<prefix>:log:<run id>:meta`: a hash: `meta` (who and what, JSON), `end` (the summary, once ended).
- `<prefix>:log:live:<user id>:<session id>`: a set of the session's runs whose logs are open.
All expire: while the run is live after its deadline plus CIRKELLINE_EVENT_LOG_TTL (a worker that
dies leaves nothing behind for ever), after its end after CIRKELLINE_EVENT_LOG_TTL.

Writes cost one round trip (one script call) every FLUSH_SECONDS for every run with new entries
(the sink below), plus one at a run's start (`open`, awaited: a reader that hears of the run
finds it) and one at its end (its last entries and its summary, at once). The scripts touch
several keys at once: a standalone Redis (not Redis Cluster).
Readers in another process mirror a run's stream: one task per run and process (XRANGE for what
is there, then XREAD BLOCK), however many of its clients read it.

redis-py gives a connection a 5 s read timeout by default; a blocking XREAD must return before
it, so the mirrors use a client of their own whose timeout is BLOCK_SECONDS longer than the block.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any

from django.conf import settings

from .logentries import Entry, dumps, lines, parse_lines
from .redis_clients import redis_client
from .runlog import NO_RUN

logger = logging.getLogger(__name__)

BLOCK_SECONDS = 5.0
# How long the sink gathers entries before writing them: readers in other processes see a live
# run's events up to this much later (its own client never waits for Redis).
FLUSH_SECONDS = 0.25
# Consecutive Redis failures after which a mirror gives up (its readers' streams end; they resume).
MIRROR_FAILURES = 5


def stream_key(run_id: str) -> str:
    return f"{settings.CIRKELLINE_REDIS_PREFIX}:log:{run_id}"


def meta_key(run_id: str) -> str:
    return f"{settings.CIRKELLINE_REDIS_PREFIX}:log:{run_id}:meta"


def live_key(user_id: Any, session_id: str) -> str:
    return f"{settings.CIRKELLINE_REDIS_PREFIX}:log:live:{user_id}:{session_id}"


def _live_key_of(meta: dict) -> str:
    """The live set of the session a log's record (`meta`) names."""
    return live_key(meta["user_id"], meta["session_id"])


def _record(found: dict) -> tuple[dict, bool] | None:
    """(meta, ended) of a log's record hash as read from Redis; None when it has no `meta`."""
    if not found or "meta" not in found:
        return None
    return json.loads(found["meta"]), "end" in found


# --- clients, sink and mirrors: one of each per event loop -------------------------------------


class _PerLoop:
    def __init__(self) -> None:
        import redis.asyncio as aioredis

        url = settings.REDIS_URL
        self.client = redis_client(url, timeout=5, socket_connect_timeout=2, decode_responses=True)
        self.blocking = aioredis.Redis.from_url(url, socket_connect_timeout=2,
                                                socket_timeout=BLOCK_SECONDS * 2, decode_responses=True)
        self.sink = Sink(self.client)
        self.mirrors = Mirrors(self.blocking)


_per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _here() -> _PerLoop:
    loop = asyncio.get_running_loop()
    here = _per_loop.get(loop)
    if here is None:
        here = _per_loop[loop] = _PerLoop()
    return here


def sink() -> Sink:
    return _here().sink


def mirrors() -> Mirrors:
    return _here().mirrors


# One command writes a window's worth of every run's entries (and the ends of the runs that
# ended): KEYS are (stream, meta, live set) per run; ARGV[1] MAXLEN, ARGV[2] the TTL after the
# end, then per run its batch (or ''), its stream's TTL to set (0: none), its summary (or ''),
# its id. A pipeline of one XADD per run cost ~18 us of redis-py per command and ~90 us per round
# trip; one script call per window costs one round trip (bench/eventlog_cost.py).
_APPEND = """
local maxlen, ended = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS / 3 do
  local stream, meta, live = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local batch, ttl, summary = ARGV[4 * i - 1], tonumber(ARGV[4 * i]), ARGV[4 * i + 1]
  if batch ~= '' then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'b', batch)
  end
  if summary ~= '' then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'end', summary)
    redis.call('HSET', meta, 'end', summary)
    redis.call('EXPIRE', meta, ended)
    redis.call('SREM', live, ARGV[4 * i + 2])
    ttl = ended
  end
  if ttl > 0 then
    redis.call('EXPIRE', stream, ttl)
  end
end
return 1
"""
# A paused run's continuation opens its run's log again: the paused part's stream and end go.
_OPEN = """
redis.call('DEL', KEYS[3])
redis.call('HDEL', KEYS[1], 'end')
redis.call('HSET', KEYS[1], 'meta', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


class _Pending:
    __slots__ = ("batches", "summary")

    def __init__(self) -> None:
        self.batches: list[str] = []
        self.summary: dict | None = None


class Sink:
    """Writes logs to Redis: every FLUSH_SECONDS, what every run added since, in one command."""

    def __init__(self, client: Any):
        self.client = client
        self._append = client.register_script(_APPEND)
        self._open = client.register_script(_OPEN)
        self._pending: dict[str, _Pending] = {}
        self._lives: dict[str, str] = {}  # run id -> its session's live set (runs opened here)
        self._lifetimes: dict[str, int] = {}  # runs whose stream has not been written yet
        self._task: asyncio.Task | None = None
        self._ends: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()
        self._failures = 0

    async def open(self, run_id: str, meta: dict, *, lifetime: float) -> None:
        ttl = int(lifetime) + 1
        live = _live_key_of(meta)
        self._lifetimes[run_id] = ttl
        self._lives[run_id] = live
        try:
            await self._open(keys=[meta_key(run_id), live, stream_key(run_id)], args=[dumps(meta), ttl, run_id])
        except Exception as exc:  # noqa: BLE001 - the run streams all the same; other workers won't see it
            logger.warning("run %s: could not open its event log in Redis (%s); it can be resumed only on "
                           "this worker", run_id, exc)

    def _for(self, run_id: str) -> _Pending:
        pending = self._pending.get(run_id)
        if pending is None:
            pending = self._pending[run_id] = _Pending()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush(), name="cirkelline-eventlog-sink",
                                                                context=NO_RUN)
        return pending

    def add(self, run_id: str, entries: list[Entry]) -> None:
        self._for(run_id).batches.append(lines(entries))

    def end(self, run_id: str, meta: dict, summary: dict) -> None:
        """The run ended: its last entries and its end go out now, not at the window's end, so a
        reader anywhere sees it ended at once (after any write of its entries already on its way)."""
        self._lives.setdefault(run_id, _live_key_of(meta))
        pending = self._pending.pop(run_id, None) or _Pending()
        pending.summary = summary
        task = asyncio.get_running_loop().create_task(self._write_now({run_id: pending}),
                                                      name="cirkelline-eventlog-end", context=NO_RUN)
        self._ends.add(task)
        task.add_done_callback(self._ends.discard)

    async def _write_now(self, batch: dict[str, _Pending]) -> None:
        try:
            await self._write(batch)
        except Exception as exc:  # noqa: BLE001
            logger.warning("event log: could not write the end of run %s to Redis (%s)", next(iter(batch)), exc)

    async def idle(self) -> None:
        """Until everything added so far is written (tests, benchmarks)."""
        while (self._task is not None and not self._task.done()) or self._ends:
            await asyncio.gather(*(t for t in [self._task, *self._ends] if t is not None and not t.done()))

    async def _flush(self) -> None:
        # A window's entries of every run go out together: under load one round trip carries many
        # runs' events, and a run's own client never waits for it (it reads this process's log).
        while self._pending:
            await asyncio.sleep(FLUSH_SECONDS)
            batch, self._pending = self._pending, {}
            try:
                await self._write(batch)
                self._failures = 0
            except Exception as exc:  # noqa: BLE001 - the local log is whole; only other workers miss these
                self._failures += 1
                if self._failures in (1, 10, 100) or self._failures % 1000 == 0:
                    logger.warning("event log: could not write %d runs' entries to Redis (%s; %d failures "
                                   "in a row)", len(batch), exc, self._failures)

    async def _write(self, batch: dict[str, _Pending]) -> None:
        # One write at a time, in order: a run's end never overtakes its entries already on their way.
        async with self._lock:
            await self._write_locked(batch)

    async def _write_locked(self, batch: dict[str, _Pending]) -> None:
        keys: list[str] = []
        args: list[Any] = [settings.CIRKELLINE_EVENT_LOG_MAXLEN, int(settings.CIRKELLINE_EVENT_LOG_TTL) + 1]
        for run_id, pending in batch.items():
            ended = pending.summary is not None
            live = self._lives.pop(run_id, "") if ended else self._lives.get(run_id, "")
            ttl = self._lifetimes.pop(run_id, 0) if pending.batches or ended else 0
            keys += [stream_key(run_id), meta_key(run_id), live or live_key(0, "-")]
            args += ["\n".join(pending.batches), ttl, dumps(pending.summary) if ended else "", run_id]
        await self._append(keys=keys, args=args)


class Mirrors:
    """This process's copies of other processes' logs, one per run however many read it."""

    def __init__(self, client: Any):
        self.client = client
        self._mirrors: dict[str, list] = {}  # run id -> [log, task, readers, synced]

    async def acquire(self, run_id: str, make: Callable[[], Any]) -> Any:
        """The mirror of the run's log, holding at least what Redis had when this was called."""
        mirror = self._mirrors.get(run_id)
        if mirror is None:
            log = make()
            synced = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(self._tail(log, synced), name=f"cirkelline-mirror-{run_id}",
                                                          context=NO_RUN)
            mirror = self._mirrors[run_id] = [log, task, 0, synced]
        mirror[2] += 1
        try:
            await asyncio.shield(mirror[3])
        except BaseException:
            self.release(run_id)
            raise
        return mirror[0]

    def release(self, run_id: str) -> None:
        mirror = self._mirrors.get(run_id)
        if mirror is None:
            return
        mirror[2] -= 1
        if mirror[2] <= 0:
            del self._mirrors[run_id]
            mirror[1].cancel()

    async def _tail(self, log: Any, synced: asyncio.Future) -> None:
        client, key, mkey = self.client, stream_key(log.run_id), meta_key(log.run_id)
        last = "0-0"
        failures = 0
        try:
            while not log.ended:
                try:
                    if not synced.done():  # what is there already, without blocking
                        items = await client.xrange(key, min="-", max="+")
                    else:
                        found = await client.xread({key: last}, count=1000, block=int(BLOCK_SECONDS * 1000))
                        items = found[0][1] if found else []
                    # Nothing, and no record: the log expired (its worker died long ago, or it ended
                    # CIRKELLINE_EVENT_LOG_TTL seconds ago).
                    gone = not items and not await client.exists(mkey)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    failures += 1
                    logger.warning("event log mirror of run %s: Redis failed (%s)", log.run_id, exc)
                    if failures >= MIRROR_FAILURES:
                        log.end(None)
                        return
                    await asyncio.sleep(min(2.0 ** failures / 4, 4.0))
                    continue
                for entry_id, fields in items:
                    last = entry_id
                    if "b" in fields:
                        log.add(parse_lines(fields["b"]))
                    if "end" in fields:
                        log.end(json.loads(fields["end"]))
                        break
                if gone:
                    log.end(None)
                if not synced.done():
                    synced.set_result(None)
        finally:
            if not synced.done():
                synced.set_result(None)


async def read_meta(run_id: str) -> tuple[dict, bool] | None:
    """(meta, ended) of a run's log in Redis; None when there is none."""
    return _record(await sink().client.hgetall(meta_key(run_id)))


async def live_runs(user_id: int, session_id: str) -> dict[str, tuple[dict, bool]]:
    """The logs of the user's runs in the session that Redis lists as open: run id -> (meta, ended)."""
    client = sink().client
    run_ids = sorted(await client.smembers(live_key(user_id, session_id)))
    if not run_ids:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.hgetall(meta_key(run_id))
        found = await pipe.execute()
    records = {run_id: _record(h) for run_id, h in zip(run_ids, found, strict=True)}
    return {run_id: record for run_id, record in records.items() if record is not None}


async def close_elsewhere(run_id: str, make_entry: Callable[[int], Entry], summary: dict) -> bool:
    """End a run's log in Redis for a worker that is gone: its terminal entry, then its summary."""
    client = sink().client
    key, mkey = stream_key(run_id), meta_key(run_id)
    found = await client.hget(mkey, "meta")
    if found is None:
        return False
    # Whoever sets `end` first closes the log (two workers reaping the same run close it once).
    if not await client.hsetnx(mkey, "end", dumps(summary)):
        return False
    meta = json.loads(found)
    last = await client.xrevrange(key, max="+", min="-", count=1)
    number = 0
    if last and "b" in last[0][1]:
        number = parse_lines(last[0][1]["b"].rsplit("\n", 1)[-1])[0][0] + 1
    ttl = int(settings.CIRKELLINE_EVENT_LOG_TTL) + 1
    async with client.pipeline(transaction=False) as pipe:
        pipe.xadd(key, {"b": lines([make_entry(number)])})
        pipe.xadd(key, {"end": dumps(summary)})
        pipe.expire(key, ttl)
        pipe.expire(mkey, ttl)
        pipe.srem(_live_key_of(meta), run_id)
        await pipe.execute()
    return True
