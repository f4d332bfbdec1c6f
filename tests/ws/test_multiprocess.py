"""Two server processes on one Redis: a run's websocket frames reach the owner's socket on the
other process, never another user's; a cancel from the other process stops it."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import httpx
import pytest
from django.conf import settings
from websockets.asyncio.client import connect

from metrics.models import RunUsage

from ..conftest import adb, bearer, parse_sse
from ..live import live_server
from .conftest import FRAME_WAIT, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

SLOW = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": "0.5"}


@pytest.fixture
def two_servers():
    if not settings.REDIS_URL:
        pytest.skip("cross-process websocket groups need REDIS_URL (the CI PostgreSQL + Redis job sets it)")
    with live_server(SLOW) as first, live_server(SLOW) as second:
        yield first, second


class Client:
    """A websocket client (the `websockets` library) on a live server, authenticated by a JWT."""

    def __init__(self, ws):
        self.ws = ws
        self.frames: list[dict] = []

    async def send(self, **frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, predicate) -> dict:
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), FRAME_WAIT))
            self.frames.append(frame)
            if predicate(frame):
                return frame

    def events(self, run_id: str) -> list[dict]:
        return [e for f in self.frames if f["type"] == "events" and f["run_id"] == run_id for e in f["events"]]


async def open_client(stack, base_url: str, user) -> Client:
    ws = await stack.enter_async_context(connect(base_url.replace("http", "ws") + "/ws/chat/",
                                                 subprotocols=["bearer", token_for(user)]))
    assert ws.subprotocol == "bearer"
    client = Client(ws)
    assert (await client.until(lambda f: True))["type"] == "ready"
    return client


async def a_session_of(base_url: str, user) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{base_url}/teams/cirkelline/runs", headers=bearer(user),
                                   data={"message": "What is 2+2?", "stream": "false"})
    assert response.status_code == 200, response.text
    return response.json()["session_id"]


async def test_the_owners_socket_on_another_process_sees_the_run_and_a_stranger_does_not(two_servers, alice, bob):
    """Guards against the session group living in one process's memory (a second tab served by
    another worker would see nothing), and against another user's socket on that worker."""
    first, second = two_servers
    session_id = await a_session_of(first, alice)
    async with AsyncExitStack() as stack:
        tab1 = await open_client(stack, first, alice)
        tab2 = await open_client(stack, second, alice)
        stranger = await open_client(stack, second, bob)
        await tab1.send(type="watch", session_id=session_id)
        await tab1.until(lambda f: f["type"] == "presence" and f["sockets"] == 1)
        await tab2.send(type="watch", session_id=session_id)
        await tab2.until(lambda f: f["type"] == "presence" and f["sockets"] == 2)
        await tab1.until(lambda f: f["type"] == "presence" and f["sockets"] == 2)  # heard over Redis
        await stranger.send(type="watch", session_id=session_id)
        refused = await stranger.until(lambda f: True)
        assert refused["type"] == "error" and refused["status"] == 404

        await tab1.send(type="run", message="Please research the history of Copenhagen", session_id=session_id,
                        ref="r1")
        run_id = (await tab1.until(lambda f: f.get("ref") == "r1"))["run_id"]
        await tab2.until(lambda f: f["type"] == "run_started" and f["run_id"] == run_id)
        finished = await tab2.until(lambda f: f["type"] == "run_finished" and f["run_id"] == run_id)
        await tab1.until(lambda f: f["type"] == "run_finished" and f["run_id"] == run_id)
        assert finished["status"] == "completed"
        assert tab2.events(run_id) == tab1.events(run_id) and tab1.events(run_id)[-1]["event"] == "TeamRunCompleted"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stranger.ws.recv(), 0.5)

        # and the other process can stop a run it does not host
        await tab1.send(type="run", message="Please research the history of Aarhus", session_id=session_id,
                        ref="r2")
        second_run = (await tab1.until(lambda f: f.get("ref") == "r2"))["run_id"]
        await tab2.until(lambda f: f["type"] == "run_started" and f["run_id"] == second_run)
        await tab2.send(type="cancel", run_id=second_run, ref="stop")
        stopped = await tab2.until(lambda f: f.get("ref") == "stop")
        assert stopped["type"] == "cancelled" and stopped["status"] == "cancelled"
        ended = await tab1.until(lambda f: f["type"] == "run_finished" and f["run_id"] == second_run)
        assert ended["status"] == "cancelled"
    rows = await adb(lambda: dict(RunUsage.objects.filter(run_id__in=[run_id, second_run])
                                  .values_list("run_id", "status")))
    assert rows == {run_id: "completed", second_run: "cancelled"}


async def test_a_socket_on_another_process_gets_an_http_run_from_its_start(two_servers, alice):
    """Guards against watchers seeing only websocket runs of their own process, and against a tab
    that opens mid-answer on another worker missing the answer's beginning."""
    first, second = two_servers
    session_id = await a_session_of(first, alice)
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=60) as http:
        early = await open_client(stack, second, alice)
        await early.send(type="watch", session_id=session_id)
        await early.until(lambda f: f["type"] == "watching")
        started = asyncio.get_running_loop().create_task(http.post(
            f"{first}/teams/cirkelline/runs", headers=bearer(alice),
            data={"message": "Please research the history of Copenhagen", "session_id": session_id}))
        seen = await early.until(lambda f: f["type"] == "run_started")
        run_id = seen["run_id"]
        await early.until(lambda f: f["type"] == "events" and f["run_id"] == run_id)
        late = await open_client(stack, second, alice)  # opened mid-answer
        await late.send(type="watch", session_id=session_id)
        watching = await late.until(lambda f: f["type"] == "watching")
        assert watching["runs"] == [run_id]
        for tab in (early, late):
            finished = await tab.until(lambda f: f["type"] == "run_finished" and f["run_id"] == run_id)
            assert finished["status"] == "completed"
        sse = parse_sse((await started).text)
    assert [e["seq"] for e in late.events(run_id)] == [f.data["event_index"] for f in sse]
    assert late.events(run_id) == early.events(run_id)
    assert late.events(run_id)[-1]["content"] == sse[-1].data["content"]


async def test_a_page_cut_off_mid_answer_resumes_on_the_other_process(two_servers, alice):
    """Guards against a reconnecting page that lands on another worker losing the answer (the run
    stopped with its socket, or its events only in the first worker's memory), or getting a word
    twice: the run goes on, and `watch` with `after` gives exactly the rest."""
    first, second = two_servers
    session_id = await a_session_of(first, alice)
    async with AsyncExitStack() as stack:
        ws = await stack.enter_async_context(connect(first.replace("http", "ws") + "/ws/chat/",
                                                     subprotocols=["bearer", token_for(alice)]))
        tab = Client(ws)
        await tab.until(lambda f: f["type"] == "ready")
        await tab.send(type="run", message="Please research the history of Copenhagen", session_id=session_id,
                       ref="r1")
        run_id = (await tab.until(lambda f: f.get("ref") == "r1"))["run_id"]
        await tab.until(lambda f: f["type"] == "events" and f["run_id"] == run_id)
        seen = tab.events(run_id)
        await ws.close()  # the network drops
        again = await open_client(stack, second, alice)
        await again.send(type="watch", session_id=session_id, after={run_id: seen[-1]["seq"]})
        watching = await again.until(lambda f: f["type"] == "watching")
        assert watching["runs"] == [run_id]
        finished = await again.until(lambda f: f["type"] == "run_finished" and f["run_id"] == run_id)
    assert finished["status"] == "completed"
    rest = again.events(run_id)
    assert rest[0]["seq"] > seen[-1]["seq"] and rest[-1]["event"] == "TeamRunCompleted"
    answer = "".join(e.get("content") or "" for e in seen + rest if e["event"] == "TeamRunContent")
    assert answer == rest[-1]["content"]
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "completed"
