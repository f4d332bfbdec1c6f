"""Many readers at once of runs that live on another worker (chat.runs.eventlog_redis's mirrors).

A run executing on another process is read from its Redis Stream: this process mirrors it
(`XRANGE`, then a blocking `XREAD`) for all its readers. Each mirrored run used to block in an
`XREAD` of its own on redis-py's default pool, which holds at most 100 connections and raises
`MaxConnectionsError` for the next command: with more than ~100 runs mirrored at once (clients
resuming or watching runs that live on other workers) the reads past the 100th failed, and a
mirror that failed five times in a row (7.5 s of quiet runs) ended its readers' streams without
their runs' ends. The tests make one failure enough to give up (`MIRROR_FAILURES = 1`), so what a
long quiet spell would show shows at once.

The writer here is this process's sink, writing as another worker's would; the runs are not this
process's, so every read goes through Redis. Needs REDIS_URL (the CI PostgreSQL + Redis job sets
it); skipped without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
import redis.asyncio as aioredis

from chat.runs import eventlog, eventlog_redis
from chat.runs.logentries import terminal_entry
from tests.runs.test_cancel_listener import until

RUNS = 150  # half as many again as redis-py's default pool held
# A bound on each wait (the test waits on conditions), not a synchronisation.
WAIT = 30.0


@pytest.fixture
async def few_connections(settings):
    """Redis on, with pools far smaller than the number of runs read at once; the test's
    connections closed after it (none of its reads left blocked in Redis for the next test)."""
    if not settings.REDIS_URL:
        pytest.skip("mirrors read runs from Redis: REDIS_URL is unset (the CI PostgreSQL + Redis job sets it)")
    settings.CIRKELLINE_REDIS_MAX_CONNECTIONS = 4
    yield settings
    await eventlog_redis.close_here()


@pytest.fixture
def give_up_at_once(monkeypatch):
    monkeypatch.setattr(eventlog_redis, "MIRROR_FAILURES", 1)


def record_of(run_id: str) -> dict:
    return {"user_id": 1, "session_id": f"session-{run_id}", "team_id": "cirkelline", "team_name": "Cirkelline",
            "message": "hello", "deep_research": False, "files": [], "started_at": "2026-01-01T00:00:00+00:00",
            "new_session": True}


def entries_of(run_id: str) -> list:
    words = ["Hello", " from", f" {run_id}"]
    content = [terminal_entry(i, {"event": "TeamRunContent", "run_id": run_id, "content": word})
               for i, word in enumerate(words)]
    return content + [terminal_entry(len(words), {"event": "TeamRunCompleted", "run_id": run_id,
                                                  "content": "".join(words)})]


async def read(run_id: str, following: asyncio.Future) -> tuple[list, dict | None]:
    """What a reader on this process gets of a run of another worker's: its entries and its end."""
    ref = await eventlog.lookup(run_id)
    assert ref is not None and ref.local is None  # read from Redis, not this process's memory
    async with ref.reading() as log:
        following.set_result(None)
        got = []
        async for batch in log.follow():
            got += batch
        return got, log.summary


async def test_150_readers_of_runs_on_another_worker_each_get_their_runs_events_and_end(
        few_connections, give_up_at_once, caplog):
    sink = eventlog_redis.sink()
    runs = [uuid.uuid4().hex for _ in range(RUNS)]
    for run_id in runs:
        await sink.open(run_id, record_of(run_id), lifetime=60)
    following = {run_id: asyncio.get_running_loop().create_future() for run_id in runs}
    with caplog.at_level(logging.WARNING, logger="chat.runs.eventlog_redis"):
        readers = [asyncio.create_task(read(run_id, following[run_id])) for run_id in runs]
        # every reader has what Redis had (nothing yet) and follows its run live
        await asyncio.wait_for(asyncio.gather(*following.values()), WAIT)
        for run_id in runs:
            sink.add(run_id, entries_of(run_id))
            sink.end(run_id, record_of(run_id), {"status": "completed", "run_id": run_id})
        results = await asyncio.wait_for(asyncio.gather(*readers), WAIT)
    cut = [run_id for run_id, (got, summary) in zip(runs, results, strict=True)
           if got != entries_of(run_id) or summary != {"status": "completed", "run_id": run_id}]
    assert not cut, f"{len(cut)} of {RUNS} readers did not get their run's events and end"
    assert [json.loads(got[-1][2])["content"] for got, _ in results] == [f"Hello from {r}" for r in runs]
    failed = [r.getMessage() for r in caplog.records if "Redis failed" in r.getMessage()]
    assert not failed, f"{len(failed)} mirror reads failed, e.g. {failed[:2]}"


async def test_one_blocking_read_serves_every_run_this_process_mirrors(few_connections, give_up_at_once):
    """However many runs are followed, one connection of the mirrors' (named
    `<prefix>:event-log-mirrors` in CLIENT LIST) is blocked, in one XREAD of all their streams."""
    settings = few_connections
    sink = eventlog_redis.sink()
    runs = [uuid.uuid4().hex for _ in range(RUNS)]
    for run_id in runs:
        await sink.open(run_id, record_of(run_id), lifetime=60)
    following = {run_id: asyncio.get_running_loop().create_future() for run_id in runs}
    readers = [asyncio.create_task(read(run_id, following[run_id])) for run_id in runs]
    await asyncio.wait_for(asyncio.gather(*following.values()), WAIT)
    name = f"{settings.CIRKELLINE_REDIS_PREFIX}:event-log-mirrors"
    control = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        async def blocked_reads() -> list[dict]:
            return [c for c in await control.client_list() if c.get("name") == name and "b" in c["flags"]]

        blocked = await until(blocked_reads, "the mirrors' connection blocked in a read")
        assert [c["cmd"] for c in blocked] == ["xread"]  # one, not one per run
    finally:
        await control.aclose()
    for run_id in runs:
        sink.add(run_id, entries_of(run_id))
        sink.end(run_id, record_of(run_id), {"status": "completed", "run_id": run_id})
    results = await asyncio.wait_for(asyncio.gather(*readers), WAIT)
    assert [got for got, _ in results] == [entries_of(run_id) for run_id in runs]


async def test_a_run_mirrored_while_the_read_is_blocked_is_followed_at_once(few_connections, monkeypatch):
    """Guards against a run that joins the mirrors waiting for the blocking read under way to end
    (BLOCK_SECONDS, here a minute) before its events reach its reader."""
    monkeypatch.setattr(eventlog_redis, "BLOCK_SECONDS", 60.0)
    settings = few_connections
    sink = eventlog_redis.sink()
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    for run_id in (first, second):
        await sink.open(run_id, record_of(run_id), lifetime=120)
    following = {run_id: asyncio.get_running_loop().create_future() for run_id in (first, second)}
    first_reader = asyncio.create_task(read(first, following[first]))
    await asyncio.wait_for(following[first], WAIT)
    name = f"{settings.CIRKELLINE_REDIS_PREFIX}:event-log-mirrors"
    control = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        async def blocked_read() -> bool:
            return any(c.get("name") == name and "b" in c["flags"] for c in await control.client_list())

        await until(blocked_read, "the mirrors' read blocked on the first run")
    finally:
        await control.aclose()
    second_reader = asyncio.create_task(read(second, following[second]))
    await asyncio.wait_for(following[second], WAIT)
    sink.add(second, entries_of(second))
    sink.end(second, record_of(second), {"status": "completed"})
    assert await asyncio.wait_for(second_reader, WAIT) == (entries_of(second), {"status": "completed"})
    sink.end(first, record_of(first), {"status": "completed"})
    assert await asyncio.wait_for(first_reader, WAIT) == ([], {"status": "completed"})


async def test_a_followed_run_whose_log_expired_ends_its_readers_streams(few_connections, monkeypatch):
    """Guards against a reader following for ever a run whose worker died long ago (its log expired
    in Redis, nothing will write it again): the stream ends, and the client resumes from the database."""
    monkeypatch.setattr(eventlog_redis, "BLOCK_SECONDS", 0.2)
    sink = eventlog_redis.sink()
    run_id = uuid.uuid4().hex
    await sink.open(run_id, record_of(run_id), lifetime=60)
    sink.add(run_id, entries_of(run_id)[:2])
    await sink.idle()
    following = asyncio.get_running_loop().create_future()
    reader = asyncio.create_task(read(run_id, following))
    await asyncio.wait_for(following, WAIT)
    await sink.client.delete(eventlog_redis.stream_key(run_id), eventlog_redis.meta_key(run_id))
    assert await asyncio.wait_for(reader, WAIT) == (entries_of(run_id)[:2], {})


async def test_a_run_left_by_its_reader_and_mirrored_again_is_read_once_and_whole(few_connections, caplog):
    """Guards against the blocking read that still had a run's first mirror (its reader gone)
    taking the run's end for a mirror of it that is no longer followed, or for its next one."""
    sink = eventlog_redis.sink()
    kept, left = uuid.uuid4().hex, uuid.uuid4().hex
    for run_id in (kept, left):
        await sink.open(run_id, record_of(run_id), lifetime=60)
    entries = entries_of(left)
    loop = asyncio.get_running_loop()
    keeping = loop.create_future()
    kept_reader = asyncio.create_task(read(kept, keeping))  # the blocking read goes on for this one
    await asyncio.wait_for(keeping, WAIT)
    with caplog.at_level(logging.WARNING, logger="chat.runs.eventlog_redis"):
        ref = await eventlog.lookup(left)
        async with ref.reading() as log:  # a reader that leaves after an entry read live
            sink.add(left, entries[:1])
            async for batch in log.follow():
                assert batch == entries[:1]
                break
        sink.add(left, entries[1:])
        sink.end(left, record_of(left), {"status": "completed"})
        await sink.idle()
        again = loop.create_future()
        assert await asyncio.wait_for(read(left, again), WAIT) == (entries, {"status": "completed"})
        sink.end(kept, record_of(kept), {"status": "completed"})
        assert await asyncio.wait_for(kept_reader, WAIT) == ([], {"status": "completed"})
    assert not [r.getMessage() for r in caplog.records if "Redis failed" in r.getMessage()]
