"""A graceful drain, on a real server process (Daphne) sent SIGTERM: /ready turns 503 at once, new
runs get 503 with Retry-After (over HTTP and as a websocket error frame), a live run shorter than
CIRKELLINE_DRAIN_SECONDS finishes (its stream ends with its completion, its row `completed`), a
longer one is cancelled when the drain's time is up (its stream ends `TeamRunCancelled`, its rows
written and billed as a cancel), the websockets are closed with 1012, and the process exits.

On the SQLite default in one process, and on PostgreSQL + Redis when the suite runs there."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.models import ChatRun
from metrics.models import RunUsage
from tests.conftest import adb, bearer, parse_sse
from tests.live import live_server_process
from tests.ws.conftest import FRAME_WAIT, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

RESEARCH = "Please research the history of Copenhagen"  # three provider calls: delegate, member, answer


async def first_event_then_rest(http: httpx.AsyncClient, url: str, alice, started: asyncio.Event) -> str:
    """A streamed run's whole body; `started` is set once its first frame has arrived."""
    body = ""
    async with http.stream("POST", url, headers=bearer(alice), data={"message": RESEARCH}) as response:
        assert response.status_code == 200
        async for text in response.aiter_text():
            body += text
            if "\n\n" in body:
                started.set()
    return body


async def ready_status(http: httpx.AsyncClient, base: str) -> tuple[int, dict]:
    response = await http.get(f"{base}/ready")
    return response.status_code, response.json()


async def turns_draining(http: httpx.AsyncClient, base: str, within: float) -> dict:
    """/ready's body once it answers 503 (it must within `within` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        status, body = await ready_status(http, base)
        if status == 503:
            return body
        assert loop.time() < deadline, f"/ready still {status} {body}"
        await asyncio.sleep(0.02)


async def exited(proc, within: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while proc.poll() is None:
        assert loop.time() < deadline, "the server did not exit"
        await asyncio.sleep(0.05)
    return proc.returncode


async def socket_run_refused_then_closed(ws) -> tuple[dict, int]:
    """Send a run frame to a draining server: its error frame, then the socket's close code."""
    await ws.send(json.dumps({"type": "run", "message": "What is 2+2?", "ref": "late"}))
    refused = None
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if frame.get("type") == "error" and frame.get("ref") == "late":
                refused = frame
    except ConnectionClosed:
        pass
    return refused, ws.close_code


@pytest.mark.parametrize("drain_seconds, latency, ends_as", [(30, 0.8, "completed"), (1, 3.0, "cancelled")],
                         ids=["a-run-shorter-than-the-drain-finishes", "a-longer-run-is-cancelled"])
async def test_sigterm_drains_the_worker(alice, drain_seconds, latency, ends_as):
    """Guards against a SIGTERM that kills live runs with the process (no terminal event, no row:
    Daphne's own handler stops at once), against a draining worker that still takes runs or says
    it is ready, and against sockets left to die without the close code that tells a page to
    reconnect elsewhere."""
    env = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": str(latency),
           "CIRKELLINE_DRAIN_SECONDS": str(drain_seconds)}
    with live_server_process(env) as server:
        base = server.base_url
        async with httpx.AsyncClient(timeout=60) as http:
            assert (await ready_status(http, base))[0] == 200
            ws = await connect(base.replace("http", "ws") + "/ws/chat/", subprotocols=["bearer", token_for(alice)])
            assert json.loads(await asyncio.wait_for(ws.recv(), FRAME_WAIT))["type"] == "ready"
            started = asyncio.Event()
            live = asyncio.ensure_future(first_event_then_rest(http, f"{base}/teams/cirkelline/runs", alice, started))
            await asyncio.wait_for(started.wait(), 30)

            server.proc.send_signal(signal.SIGTERM)
            ready = await turns_draining(http, base, within=latency / 2)
            assert ready["status"] == "draining" and "shutting down" in ready["detail"]
            assert not live.done()  # told before the live run ended

            refused = await http.post(f"{base}/teams/cirkelline/runs", headers=bearer(alice),
                                      data={"message": "What is 2+2?"})
            assert refused.status_code == 503
            assert int(refused.headers["Retry-After"]) >= 1
            assert "restarting" in refused.json()["detail"] and refused.json()["retry_after"] >= 1

            error, close_code = await socket_run_refused_then_closed(ws)
            body = await asyncio.wait_for(live, 60)
        assert await exited(server.proc, within=30) == 0
        output = server.output()

    assert error["status"] == 503 and error["code"] == "draining" and error["retry_after"] >= 1
    assert close_code == 1012, output[-4000:]
    frames = parse_sse(body)
    run_id = frames[0].data["run_id"]
    assert frames[-1].event == ("TeamRunCompleted" if ends_as == "completed" else "TeamRunCancelled")
    usage = await adb(lambda: RunUsage.objects.get(run_id=run_id))
    assert usage.status == ends_as, output[-3000:]
    assert usage.total_tokens > 0  # billed: the calls that had completed
    run = await adb(lambda: ChatRun.objects.get(run_id=run_id))
    assert run.status == ends_as.upper()
    # Nothing else ran: the refused run and frame left no row.
    assert await adb(lambda: RunUsage.objects.filter(user=alice).count()) == 1
