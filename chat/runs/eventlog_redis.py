"""The Redis side of run event logs (chat.runs.eventlog), when `REDIS_URL` is set.

Keys (under CIRKELLINE_REDIS_PREFIX):
- `<prefix>:log:<run id>`: a Redis Stream. Each stream entry holds a batch of log entries, one per
  line, `<event_index> <event name> <JSON>` (chat.runs.logentries.lines), in field `b`; the
  last holds the run's summary in field `end`. Bounded with `XADD MAXLEN ~`
  (CIRKELLINE_EVENT_LOG_MAXLEN batches).
- `<prefix>:log:<run id>:meta`: a hash: `meta` (who and what, JSON), `end` (the summary, once ended).
- `<prefix>:log:live:<user id>:<session id>`: a set of the session's runs whose logs are open.
- `<prefix>:log:mirrors:<random>`: a process's doorbell (a Stream of one entry; below).
All expire: while the run is live after its deadline plus CIRKELLINE_EVENT_LOG_TTL (a worker that
dies leaves nothing behind for ever), after its end after CIRKELLINE_EVENT_LOG_TTL.

Writes cost one round trip (one script call) every FLUSH_SECONDS for every run with new entries
(the sink below), plus one at a run's start (`open`, awaited: a reader that hears of the run
finds it) and one at its end (its last entries and its summary, at once). The scripts touch
several keys at once: a standalone Redis (not Redis Cluster).
Readers in another process mirror a run's stream, one mirror per run and process however many of
its clients read it: an XRANGE of what is there (a short command), then the run joins the
process's one blocking read, an XREAD BLOCK of every stream it follows at once. So a process holds
one blocking connection however many runs it mirrors (each run blocking in an XREAD of its own
took a connection per run, and redis-py's default pool raised `MaxConnectionsError` past 100). A
run that joins while that read is blocked rings the process's doorbell, a stream the read also
reads: the read returns and starts again with the run in it.

redis-py gives a connection a 5 s read timeout by default; a blocking XREAD must return before
it, so the mirrors read with a client of their own whose timeout is BLOCK_SECONDS longer than the
block. Both clients' pools wait for a free connection (chat.runs.redis_clients).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
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
        url = settings.REDIS_URL
        self.client = redis_client(url, timeout=5, socket_connect_timeout=2, decode_responses=True)
        # The mirrors' blocking read, one at a time: one connection, named for CLIENT LIST.
        self.blocking = redis_client(url, timeout=BLOCK_SECONDS * 2, socket_connect_timeout=2, decode_responses=True,
                                     client_name=f"{settings.CIRKELLINE_REDIS_PREFIX}:event-log-mirrors")
        self.sink = Sink(self.client)
        self.mirrors = Mirrors(self.client, self.blocking)


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


async def close_here() -> None:
    """This loop's writes done, its mirrors' read stopped and its connections closed (a test's loop
    ends with nothing of it left in Redis: a blocked read would stay blocked there)."""
    here = _per_loop.pop(asyncio.get_running_loop(), None)
    if here is None:
        return
    await here.sink.idle()
    await here.mirrors.stop()
    await here.client.aclose()
    await here.blocking.aclose()


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


class _Mirror:
    """One run's mirror: its log, how many read it, where in its stream it is."""

    __slots__ = ("log", "readers", "sync", "last", "heard")

    def __init__(self, log: Any):
        self.log = log
        self.readers = 0
        self.sync: asyncio.Task | None = None
        self.last = "0-0"  # the id of the last stream entry taken in
        self.heard = 0.0  # when its stream last gave something (or its record was found), loop time


class Mirrors:
    """This process's copies of other processes' logs, one per run however many read it, all followed
    by one blocking read: the connections they hold do not grow with the runs mirrored."""

    def __init__(self, client: Any, blocking: Any):
        self.client = client  # short commands: a run's catch-up, records, the doorbell
        self.blocking = blocking  # the one XREAD BLOCK of every followed stream
        # Rung (XADD) when a run is to join the blocking read, which reads this stream too, so a
        # read already blocked with the streams it had returns and starts again with the new one.
        self.bell = f"{settings.CIRKELLINE_REDIS_PREFIX}:log:mirrors:{uuid.uuid4().hex}"
        self._bell_last = "0-0"
        self._mirrors: dict[str, _Mirror] = {}
        self._followed: dict[str, _Mirror] = {}  # caught up and not ended: in the blocking read
        self._task: asyncio.Task | None = None
        self._ring_due = False
        self._rings: set[asyncio.Task] = set()

    async def acquire(self, run_id: str, make: Callable[[], Any]) -> Any:
        """The mirror of the run's log, holding at least what Redis had when this was called."""
        mirror = self._mirrors.get(run_id)
        if mirror is None:
            mirror = self._mirrors[run_id] = _Mirror(make())
            mirror.sync = asyncio.get_running_loop().create_task(
                self._catch_up(run_id, mirror), name=f"cirkelline-mirror-{run_id}", context=NO_RUN)
        mirror.readers += 1
        try:
            await asyncio.shield(mirror.sync)
        except BaseException:
            self.release(run_id)
            raise
        return mirror.log

    async def stop(self) -> None:
        """Stop following (the logs mirrored stay as they are)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*self._rings, return_exceptions=True)

    def release(self, run_id: str) -> None:
        mirror = self._mirrors.get(run_id)
        if mirror is None:
            return
        mirror.readers -= 1
        if mirror.readers > 0:
            return
        del self._mirrors[run_id]
        mirror.sync.cancel()
        if self._followed.get(run_id) is mirror:
            del self._followed[run_id]
        if not self._followed and self._task is not None:
            # Nothing left to follow: the read blocked for up to BLOCK_SECONDS gives its connection
            # up now (redis-py closes a connection whose command was cancelled; the next opens one).
            self._task.cancel()
            self._task = None

    async def _catch_up(self, run_id: str, mirror: _Mirror) -> None:
        """What Redis has of the run's log now, without blocking; then the run joins the blocking read."""
        log, failures = mirror.log, 0
        while True:
            try:
                items = await self.client.xrange(stream_key(run_id), min="-", max="+")
                # Nothing, and no record: the log expired (its worker died long ago, or it ended
                # CIRKELLINE_EVENT_LOG_TTL seconds ago).
                gone = not items and not await self.client.exists(meta_key(run_id))
                break
            except Exception as exc:  # noqa: BLE001
                failures += 1
                logger.warning("event log mirror of run %s: Redis failed (%s)", run_id, exc)
                if failures >= MIRROR_FAILURES:
                    log.end(None)
                    return
                await asyncio.sleep(_backoff(failures))
        _take(mirror, items)
        if gone:
            log.end(None)
        if not log.ended and self._mirrors.get(run_id) is mirror:
            mirror.heard = asyncio.get_running_loop().time()
            self._followed[run_id] = mirror
            self._wake()

    def _wake(self) -> None:
        """A run joins the blocking read: start it, or have the one blocked start again."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._follow(), name="cirkelline-mirrors", context=NO_RUN)
        elif not self._ring_due:  # one ring for every run joining before it goes out
            self._ring_due = True
            ring = loop.create_task(self._ring(), name="cirkelline-mirrors-bell", context=NO_RUN)
            self._rings.add(ring)
            ring.add_done_callback(self._rings.discard)

    async def _ring(self) -> None:
        # Cleared before the XADD is sent: a run joining later rings again, and every run that
        # joined before is in the read that the ring makes return (or in a later one).
        self._ring_due = False
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.xadd(self.bell, {"w": "1"}, maxlen=1, approximate=False)
                pipe.expire(self.bell, int(settings.CIRKELLINE_EVENT_LOG_TTL) + 1)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001
            logger.warning("event log mirrors: could not ring Redis (%s); runs just mirrored are followed live "
                           "after the blocking read under way returns (%s s at most)", exc, BLOCK_SECONDS)

    async def _follow(self) -> None:
        """One XREAD BLOCK of every followed run's stream (and the bell) after another, while any is followed."""
        failures = 0
        while self._followed:
            following = dict(self._followed)
            try:
                await self._read(following)
                failures = 0
            except Exception as exc:  # noqa: BLE001
                failures += 1
                logger.warning("event log mirrors: Redis failed reading %d runs (%s)", len(following), exc)
                if failures >= MIRROR_FAILURES:
                    # Their readers' streams end without the runs' ends; they resume.
                    for run_id, mirror in following.items():
                        if self._followed.get(run_id) is mirror:
                            del self._followed[run_id]
                        mirror.log.end(None)
                    failures = 0
                    continue
                await asyncio.sleep(_backoff(failures))

    async def _read(self, following: dict[str, _Mirror]) -> None:
        by_key = {stream_key(run_id): (run_id, mirror) for run_id, mirror in following.items()}
        streams = {key: mirror.last for key, (_, mirror) in by_key.items()}
        streams[self.bell] = self._bell_last
        found = await self.blocking.xread(streams, count=1000, block=int(BLOCK_SECONDS * 1000))
        now = asyncio.get_running_loop().time()
        for key, items in found or ():
            if key == self.bell:
                self._bell_last = items[-1][0]
                continue
            run_id, mirror = by_key[key]
            if self._followed.get(run_id) is not mirror:  # released (maybe mirrored afresh) meanwhile
                continue
            mirror.heard = now
            _take(mirror, items)
            if mirror.log.ended:
                del self._followed[run_id]
        # Runs quiet for BLOCK_SECONDS: a log without its record expired (its worker died long ago).
        quiet = [(run_id, mirror) for run_id, mirror in following.items()
                 if self._followed.get(run_id) is mirror and now - mirror.heard >= BLOCK_SECONDS]
        if not quiet:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id, _ in quiet:
                pipe.exists(meta_key(run_id))
            kept = await pipe.execute()
        for (run_id, mirror), exists in zip(quiet, kept, strict=True):
            mirror.heard = now
            if not exists and self._followed.get(run_id) is mirror:
                del self._followed[run_id]
                mirror.log.end(None)


def _take(mirror: _Mirror, items: list) -> None:
    """Stream entries into a mirror's log, up to the run's end."""
    log = mirror.log
    for entry_id, fields in items:
        mirror.last = entry_id
        if "b" in fields:
            log.add(parse_lines(fields["b"]))
        if "end" in fields:
            log.end(json.loads(fields["end"]))
            break


def _backoff(failures: int) -> float:
    return min(2.0 ** failures / 4, 4.0)


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
