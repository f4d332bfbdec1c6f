"""A burst of websocket connects to one worker on Redis: every socket is accepted and hears runs.

Each connect counts the socket against its user's quota (in Redis) and joins the user's group
through the channel layer, each a Redis command taking a connection of its client's pool while
it runs; each watch asks for the session's live runs and joins the session's group. redis-py's
pools held at most 100 connections and raised `MaxConnectionsError` for the next command instead
of waiting: of a burst of more than ~99 connects at the same moment, the ones past it were closed
with 1011 (and the quota counted them in the worker only), and of as many watches the ones past
it were answered 500. The layer's messages for all of a process's sockets wait on one Redis key,
100 at most: past it, run notices were dropped and a presence answer closed its socket with 1011.

Needs REDIS_URL (the CI PostgreSQL + Redis job sets it); skipped without it.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
import pytest
import redis.asyncio as aioredis
from django.conf import settings
from websockets.asyncio.client import connect

from ..conftest import bearer, parse_sse
from ..live import live_server
from .conftest import token_for
from .test_multiprocess import Client, a_session_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

SOCKETS = 300  # three times what redis-py's default pool held
SESSIONS = 30  # each watched by SOCKETS // SESSIONS sockets (presence messages grow with its square)
# A bound on the whole burst's connects, not a synchronisation.
BURST_BOUND = 60.0


@pytest.fixture
def worker():
    if not settings.REDIS_URL:
        pytest.skip("the channel layer on Redis needs REDIS_URL (the CI PostgreSQL + Redis job sets it)")
    with live_server({"REDIS_URL": settings.REDIS_URL,
                      "CIRKELLINE_WS_MAX_SOCKETS_PER_USER": str(SOCKETS)}) as base_url:
        yield base_url


async def connect_one(stack: AsyncExitStack, url: str, token: str) -> Client | str:
    """A socket that got its `ready` frame, or what it got instead (and its close code)."""
    ws = await stack.enter_async_context(connect(url, subprotocols=["bearer", token], ping_interval=None,
                                                 open_timeout=BURST_BOUND))
    client = Client(ws)
    try:
        first = await client.until(lambda f: True)
    except Exception as exc:  # noqa: BLE001 - reported with the others below
        return f"{type(exc).__name__}, close code {ws.close_code}"
    return client if first["type"] == "ready" else f"{first}, close code {ws.close_code}"


async def failures(calls) -> list[str]:
    """Run the calls at once; what went wrong in each that failed."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    return [repr(result) for result in results if result is not None]


async def test_a_burst_of_connects_past_the_old_pool_limit_is_accepted_and_every_socket_hears_a_run(worker, alice):
    sessions = [await a_session_of(worker, alice) for _ in range(SESSIONS)]
    url = worker.replace("http", "ws") + "/ws/chat/"
    token = token_for(alice)
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=60) as http:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(connect_one(stack, url, token) for _ in range(SOCKETS))), BURST_BOUND)
        refused = [outcome for outcome in outcomes if not isinstance(outcome, Client)]
        assert not refused, f"{len(refused)} of {SOCKETS} sockets not accepted, e.g. {refused[:3]}"
        clients: list[Client] = outcomes  # type: ignore[assignment]
        # and each is counted in Redis against its user's quota, not in this worker only
        counted = aioredis.Redis.from_url(settings.REDIS_URL)
        stack.push_async_callback(counted.aclose)
        assert await counted.zcard(f"{settings.CIRKELLINE_REDIS_PREFIX}:sockets:{alice.pk}") == SOCKETS
        watched = {client: sessions[i % SESSIONS] for i, client in enumerate(clients)}

        async def watch(client: Client) -> None:
            await client.send(type="watch", session_id=watched[client])
            answer = await client.until(lambda f: f["type"] in ("watching", "error"))
            assert answer["type"] == "watching", answer

        failed = await failures(watch(client) for client in clients)
        assert not failed, f"{len(failed)} of {SOCKETS} watches failed, e.g. {failed[:3]}"

        run_of = {}
        for session_id in sessions:  # one after another: each run's notice reaches its watchers
            response = await http.post(f"{worker}/teams/cirkelline/runs", headers=bearer(alice),
                                       data={"message": "What is 2+2?", "session_id": session_id})
            assert response.status_code == 200, response.text
            run_of[session_id] = parse_sse(response.text)[0].data["run_id"]

        async def hears_its_run(client: Client) -> None:
            run_id = run_of[watched[client]]
            finished = await client.until(lambda f: f["type"] == "run_finished" and f["run_id"] == run_id)
            assert finished["status"] == "completed"
            assert client.events(run_id)[-1]["event"] == "TeamRunCompleted"

        failed = await failures(hears_its_run(client) for client in clients)
        assert not failed, f"{len(failed)} of {SOCKETS} sockets did not hear their run, e.g. {failed[:3]}"
        assert all(client.ws.close_code is None for client in clients)
        # All at once: one after another, leaving the stack waited for each close handshake in turn
        # (most of this test's time).
        await asyncio.gather(*(client.ws.close() for client in clients))
