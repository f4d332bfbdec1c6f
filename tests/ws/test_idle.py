"""Idle websockets on Redis stay open: two server processes on one Redis, a socket on each, quiet
for longer than the channel layer's blocking read, then a run through each of them.

With redis-py 8 every connection had a 5 s read timeout by default and channels_redis waits for
a socket's next message in a BZPOPMIN of 5 s: the read gave up as Redis's empty answer was due,
and every socket quiet for 5 s was closed with 1011.

On REDIS_URL, else a Redis answering on 127.0.0.1:6379; skipped when none answers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from ..live import live_server
from ..runs.test_multiprocess import _redis_url
from .test_multiprocess import Client, a_session_of, open_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

# A bound on the idle period (several blocking reads), not a synchronisation.
IDLE_BOUND = 4 * RedisChannelLayer.brpop_timeout + 10


class _MonitorConnection(aioredis.Connection):
    """A connection whose reader takes lines of any length. MONITOR echoes every command of every
    client of the Redis server, other tests' too (the suite's workers share it), and asyncio's
    reader stops at lines of 64 KiB: one long command of theirs broke the watch (ValueError).
    Arguments added as redis-py's own SSLConnection adds its own."""

    def _connection_arguments(self):
        return {**super()._connection_arguments(), "limit": 2**30}


@pytest.fixture
def redis_url() -> str:
    url = _redis_url()
    if url is None:
        pytest.skip("the channel layer on Redis needs Redis: REDIS_URL is unset and nothing answers locally")
    return url


@pytest.fixture
def two_servers(redis_url):
    with live_server({"REDIS_URL": redis_url}) as first, live_server({"REDIS_URL": redis_url}) as second:
        yield first, second


async def blocking_reads_came_back_empty(monitor, processes: int) -> None:
    """Return once every server process's channel layer has had a blocking read (BZPOPMIN on its
    sockets' channel) answered empty: its read began, Redis waited the layer's `brpop_timeout`
    with nothing to deliver, and the layer asked again. Seen through Redis's MONITOR: the second
    BZPOPMIN on a process's channel key after we started watching follows a whole empty one."""
    layer_prefix = f"{settings.CIRKELLINE_REDIS_PREFIX}:asgi"
    seen: Counter[str] = Counter()
    async for command in monitor.listen():
        words = command["command"].split(" ")
        if words[0].upper() == "BZPOPMIN" and words[1].startswith(layer_prefix):
            seen[words[1]] += 1
            if len(seen) >= processes and all(count >= 2 for count in seen.values()):
                return


async def stay_open_while(clients: list[Client], condition) -> None:
    """Wait for `condition` while no client receives anything (a close, on the bug)."""
    waiting = asyncio.ensure_future(condition)
    receiving = [asyncio.ensure_future(client.ws.recv()) for client in clients]
    try:
        done, _ = await asyncio.wait([waiting, *receiving], timeout=IDLE_BOUND,
                                     return_when=asyncio.FIRST_COMPLETED)
        for client, task in zip(clients, receiving, strict=True):
            if task in done:
                raise AssertionError(f"an idle socket received {task.exception() or task.result()!r}; "
                                     f"close code {client.ws.close_code}")
        assert waiting in done, f"the channel layers made no idle round within {IDLE_BOUND} s"
        waiting.result()
    finally:
        for task in [waiting, *receiving]:
            task.cancel()
        await asyncio.gather(waiting, *receiving, return_exceptions=True)


async def test_sockets_idle_past_the_layers_blocking_read_still_carry_runs_across_processes(two_servers, redis_url,
                                                                                           alice):
    first, second = two_servers
    session_id = await a_session_of(first, alice)
    watcher = aioredis.Redis.from_url(redis_url, socket_timeout=None, decode_responses=True,
                                      connection_class=_MonitorConnection)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(watcher.aclose)
        tab1 = await open_client(stack, first, alice)
        tab2 = await open_client(stack, second, alice)
        await tab1.send(type="watch", session_id=session_id)
        await tab1.until(lambda f: f["type"] == "presence" and f["sockets"] == 1)
        await tab2.send(type="watch", session_id=session_id)
        await tab2.until(lambda f: f["type"] == "presence" and f["sockets"] == 2)
        await tab1.until(lambda f: f["type"] == "presence" and f["sockets"] == 2)

        monitor = await stack.enter_async_context(watcher.monitor())
        await stay_open_while([tab1, tab2], blocking_reads_came_back_empty(monitor, processes=2))

        for starter, other in ((tab1, tab2), (tab2, tab1)):
            ref = f"after-idle-{len(starter.frames)}"
            await starter.send(type="run", message="What is 2+2?", session_id=session_id, ref=ref)
            run_id = (await starter.until(lambda f, ref=ref: f.get("ref") == ref))["run_id"]
            for tab in (starter, other):
                finished = await tab.until(lambda f, run_id=run_id: f["type"] == "run_finished"
                                           and f["run_id"] == run_id)
                assert finished["status"] == "completed"
            assert other.events(run_id) == starter.events(run_id)
            assert starter.events(run_id)[-1]["event"] == "TeamRunCompleted"
