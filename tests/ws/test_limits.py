"""What one client may do with the chat websocket: frame sizes (tight before authentication), frames
per second, sockets per user; and no client holds /health with frames."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from chat.ws import limits

from ..live import ROOT, live_server
from .conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_large_frame_before_authenticating_closes_the_socket_with_1009(connect, settings):
    settings.CIRKELLINE_WS_MAX_UNAUTH_FRAME_BYTES = 1024
    socket = await connect()
    await socket.comm.send_to(text_data=json.dumps({"type": "auth", "token": "x" * 2000}))
    error = await socket.next()
    assert (error["type"], error["status"], error["code"], error["limit"]) == ("error", 413, "too_large", 1024)
    assert await socket.next() == {"type": "closed", "code": limits.CLOSE_TOO_LARGE}


async def test_an_authenticated_socket_has_the_larger_limit(connect, alice, settings):
    settings.CIRKELLINE_WS_MAX_UNAUTH_FRAME_BYTES = 1024
    settings.CIRKELLINE_WS_MAX_FRAME_BYTES = 8192
    socket = await connect(alice, via="header")
    await socket.send(type="nothing", padding="y" * 4000)  # over 1 KiB, under 8 KiB: parsed and answered
    assert (await socket.next())["detail"].startswith("Unknown frame type")
    await socket.send(type="nothing", padding="é" * 5000)  # 10 000 bytes in UTF-8
    error = await socket.next()
    assert (error["status"], error["code"], error["limit"]) == (413, "too_large", 8192)
    assert await socket.next() == {"type": "closed", "code": limits.CLOSE_TOO_LARGE}


async def test_frames_past_the_rate_are_refused_then_the_socket_closed_with_1008(connect, alice, settings):
    settings.CIRKELLINE_WS_FRAMES_PER_SECOND = 1
    settings.CIRKELLINE_WS_FRAME_BURST = 5
    socket = await connect(alice, via="header")
    for _ in range(30):
        await socket.comm.send_to(text_data=json.dumps({"type": "nothing"}))
    answers = []
    while (frame := await socket.next())["type"] != "closed":
        answers.append(frame)
    handled = [f for f in answers if f.get("detail", "").startswith("Unknown frame type")]
    limited = [f for f in answers if f.get("code") == "rate_limited"]
    assert len(handled) == 5  # the burst
    assert len(limited) == 2  # the first refused frame, and the close
    assert limited[0]["retry_after"] > 0
    assert frame["code"] == limits.CLOSE_FLOODING


async def test_a_user_may_open_only_so_many_sockets(connect, alice, bob, settings):
    settings.CIRKELLINE_WS_MAX_SOCKETS_PER_USER = 2
    first = await connect(alice, via="header")
    await connect(alice, via="cookie")
    third = await connect(alice, via=None)
    await third.send(type="auth", token=token_for(alice))
    error = await third.next()
    assert (error["status"], error["code"], error["limit"]) == (429, "too_many_sockets", 2)
    assert await third.next() == {"type": "closed", "code": 4429}
    await connect(bob, via="header")  # another user's count is their own
    await first.comm.disconnect()
    await connect(alice, via="header")  # a closed socket frees its place


async def _health_rates(base_url: str, hostile) -> tuple[object, float, float]:
    """(what `hostile` returned, /health's answers per second while it ran, and when idle). A rate
    of sequential probes, not their worst latency: one slow answer on a busy machine says little,
    a loop held for seconds answers a handful."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        async def probes(until) -> float:
            count, started = 0, time.perf_counter()
            while not until():
                assert (await client.get("/health")).status_code == 200
                count += 1
            return count / (time.perf_counter() - started)

        finish = time.perf_counter() + 1.0
        idle = await probes(lambda: time.perf_counter() > finish)
        attack = asyncio.ensure_future(hostile())
        await asyncio.sleep(0)
        during = await probes(attack.done)
        return await attack, during, idle


@pytest.mark.live
async def test_large_frames_without_credentials_do_not_hold_health():
    """Twenty unauthenticated sockets each send one frame of ~1 MiB of small objects (Daphne's
    default message limit), from another process: before, each was parsed on the event loop (and
    refused after: /health answered 11 times a second meanwhile, against 200 when idle (measured
    with the unauthenticated limit at 2 MiB and no parse threads); now each is refused on its
    length, unparsed: 100 a second against 250."""

    async def hostile():
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.ws.hostile", base_url.replace("http", "ws") + "/ws/chat/", "20",
            str(1000 * 1024), cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        out, _ = await client.communicate()
        return out.decode().split()

    with live_server() as base_url:
        codes, during, idle = await _health_rates(base_url, hostile)
    assert codes == [str(limits.CLOSE_TOO_LARGE)] * 20
    assert during > idle / 10, (during, idle)


@pytest.mark.live
async def test_a_flood_of_tiny_frames_is_cut_off(alice):
    """One socket sends 20 000 tiny frames as fast as it can: the server handles its burst, refuses
    the rest and closes the socket, instead of answering every one."""
    token = token_for(alice)
    with live_server() as base_url:
        async with ws_connect(base_url.replace("http", "ws") + "/ws/chat/", subprotocols=["bearer", token]) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            started = time.monotonic()
            try:
                for _ in range(20_000):
                    await ws.send('{"type":"nothing"}')
            except ConnectionClosed:
                pass
            answers = []
            try:
                while True:
                    answers.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            except ConnectionClosed as exc:
                code = exc.rcvd.code
            took = time.monotonic() - started
    assert code == limits.CLOSE_FLOODING
    handled = [a for a in answers if a.get("status") == 400]
    assert len(handled) <= 40 + 10 * took + 1  # the burst, and what the rate refilled meanwhile
    assert len(handled) < 1000


async def test_sockets_of_a_process_that_died_age_out_of_the_count(alice, settings):
    """With Redis, the count is a sorted set whose entries expire unless their process renews them."""
    if not settings.REDIS_URL:
        pytest.skip("the cross-process count needs REDIS_URL (the CI PostgreSQL + Redis job sets it)")
    settings.CIRKELLINE_WS_MAX_SOCKETS_PER_USER = 1
    quota = limits.SocketQuota()
    client = quota._redis()
    key = quota._key(alice.pk)
    try:
        await client.zadd(key, {"dead-process-socket": time.time() - 1})  # its process stopped renewing
        assert await quota.acquire(alice.pk, "socket-1")
        assert not await quota.acquire(alice.pk, "socket-2")
        before = await client.zscore(key, "socket-1")
        await quota.renew()
        assert await client.zscore(key, "socket-1") >= before
        await quota.release(alice.pk, "socket-1")
        assert await client.zcard(key) == 0
    finally:
        await client.delete(key)
        await client.aclose()


@pytest.mark.live
async def test_the_socket_cap_holds_across_server_processes(alice, settings):
    if not settings.REDIS_URL:
        pytest.skip("the cross-process count needs REDIS_URL (the CI PostgreSQL + Redis job sets it)")
    env = {"CIRKELLINE_WS_MAX_SOCKETS_PER_USER": "2"}
    token = token_for(alice)

    async def ready(base_url):
        ws = await ws_connect(base_url.replace("http", "ws") + "/ws/chat/", subprotocols=["bearer", token])
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        return ws, first

    with live_server(env) as first, live_server(env) as second:
        one, frame = await ready(first)
        assert frame["type"] == "ready"
        two, frame = await ready(second)
        assert frame["type"] == "ready"
        three, frame = await ready(first)
        assert (frame["status"], frame["code"]) == (429, "too_many_sockets")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(three.recv(), 30)
        assert closed.value.rcvd.code == limits.CLOSE_TOO_MANY_SOCKETS
        await one.close()
        quota = limits.SocketQuota()
        deadline = time.monotonic() + 10  # a bound: the first server releases the socket as it closes
        while await quota._redis().zcard(quota._key(alice.pk)) > 1:
            assert time.monotonic() < deadline, "the closed socket was never released"
            await asyncio.sleep(0.05)
        four, frame = await ready(first)
        assert frame["type"] == "ready"
        await asyncio.gather(two.close(), four.close())
