"""The cancel listener (chat.runs.admission) keeps hearing cancels published by other processes:
after a quiet spell longer than its connection's read timeout, and after Redis stops answering
without closing the connection (a host gone, a partition), which it notices and recovers from.

On real Redis: REDIS_URL, else a Redis answering on 127.0.0.1:6379; skipped when none answers.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from chat.runs import admission
from tests.runs.test_multiprocess import _redis_url

# A bound on each wait (the test waits on conditions), not a synchronisation.
WAIT = 15.0
# The listener's client's read timeout (chat.runs.admission).
READ_TIMEOUT = 2


@pytest.fixture
def redis_url() -> str:
    url = _redis_url()
    if url is None:
        pytest.skip("the cancel listener needs Redis: REDIS_URL is unset and nothing answers locally")
    return url


@pytest.fixture
async def control(redis_url):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


class FreezableProxy:
    """A TCP proxy to Redis whose open connections can be frozen: bytes stop flowing both ways
    while both sockets stay open, as when a host vanishes without a word. Later connections flow."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.connections = 0
        self._pumps: list[asyncio.Task] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]
        self._pumps += [asyncio.ensure_future(self._pump(reader, up_writer)),
                        asyncio.ensure_future(self._pump(up_reader, writer))]

    @staticmethod
    async def _pump(reader, writer) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    def freeze(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        self._pumps = []

    async def close(self) -> None:
        self.freeze()
        for writer in self._writers:
            writer.close()
        self._server.close()


async def until(condition, what: str):
    """Poll an async condition until it holds (bounded by WAIT)."""
    deadline = time.monotonic() + WAIT
    while not (value := await condition()):
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        await asyncio.sleep(0.05)
    return value


async def subscribers(control) -> int:
    return dict(await control.pubsub_numsub(admission._cancel_channel()))[admission._cancel_channel()]


@pytest.fixture
async def listen():
    """listen(redis_url) -> a queue of the run ids the listener of a Coordinator on that URL hears."""
    tasks = []

    async def start(url: str) -> asyncio.Queue:
        heard: asyncio.Queue = asyncio.Queue()
        coordinator = admission.Coordinator(url)
        coordinator.ensure_listener(heard.put_nowait)
        tasks.append(coordinator._listeners[asyncio.get_running_loop()])
        return heard

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_cancel_after_a_quiet_spell_longer_than_the_read_timeout_is_heard(redis_url, control, listen):
    heard = await listen(redis_url)
    name = f"{settings.CIRKELLINE_REDIS_PREFIX}:cancel-listener"

    async def listener_idle_past_the_read_timeout() -> bool:
        return any(c.get("name") == name and int(c["idle"]) > READ_TIMEOUT for c in await control.client_list())

    await until(listener_idle_past_the_read_timeout, "the listener's connection idle past its read timeout")
    await control.publish(admission._cancel_channel(), "run-after-quiet")
    assert await asyncio.wait_for(heard.get(), WAIT) == "run-after-quiet"


async def test_a_listener_whose_redis_went_silent_subscribes_again_and_hears_the_next_cancel(
        redis_url, control, listen, monkeypatch):
    monkeypatch.setattr(admission, "LISTENER_PING_INTERVAL", 0.3)
    parts = urlsplit(redis_url)
    proxy = FreezableProxy(parts.hostname, parts.port or 6379)
    port = await proxy.start()
    try:
        heard = await listen(f"redis://127.0.0.1:{port}{parts.path}")
        await until(lambda: subscribers_at_least(control, 1), "the listener subscribed")
        assert proxy.connections == 1

        proxy.freeze()
        # the frozen subscription still counts in Redis: a second one is the listener's new one
        await until(lambda: subscribers_at_least(control, 2), "the listener subscribed again")
        assert proxy.connections == 2
        await control.publish(admission._cancel_channel(), "run-after-outage")
        assert await asyncio.wait_for(heard.get(), WAIT) == "run-after-outage"
    finally:
        await proxy.close()


async def subscribers_at_least(control, count: int) -> bool:
    return await subscribers(control) >= count
