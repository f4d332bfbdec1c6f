"""A server process killed mid-run (SIGKILL): its run is closed by another worker, billed for the
calls it completed, its user's message kept with an "interrupted" answer, its admission slot
freed, and a resumed stream ends with `TeamRunError` `worker_lost`; the other worker's runs go on.

Two real server processes on PostgreSQL + Redis (the CI job with both), with a lease and a
reaper interval of about a second (settings), so the test waits seconds, on conditions.
"""

from __future__ import annotations

import asyncio
import json
import signal
from contextlib import AsyncExitStack

import httpx
import pytest
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import connect

from chat.runs.reaper import INTERRUPTED
from metrics.models import ModelCall, RunUsage
from tests.conftest import adb, bearer, parse_sse, until
from tests.live import live_server_process
from tests.metrics.helpers import rule
from tests.ws.conftest import FRAME_WAIT, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

RUNS = "/teams/cirkelline/runs"
RESEARCH = "Please research the history of Copenhagen"
ENV = {
    "CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": "2.0",  # per call: leader, member, leader
    "CIRKELLINE_MAX_RUNS_PER_USER": "1",  # a slot the dead run would hold
    "CIRKELLINE_WORKER_HEARTBEAT_SECONDS": "0.3", "CIRKELLINE_WORKER_LEASE_SECONDS": "1.2",
    "CIRKELLINE_REAPER_INTERVAL_SECONDS": "0.5", "CIRKELLINE_LIVE_LEDGER_SECONDS": "0.1",
}


@pytest.fixture
def workers():
    if not settings.REDIS_URL or connection.vendor != "postgresql":
        pytest.skip("several worker processes: PostgreSQL and REDIS_URL")
    env = {**ENV, "REDIS_URL": settings.REDIS_URL}
    with live_server_process(env) as doomed, live_server_process(env) as survivor:
        yield doomed, survivor


class Watcher:
    """A chat page's socket (the `websockets` library, JWT) watching one session."""

    def __init__(self, ws):
        self.ws, self.frames = ws, []

    async def until(self, predicate) -> dict:
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), FRAME_WAIT))
            self.frames.append(frame)
            if predicate(frame):
                return frame

    def events(self, run_id: str) -> list[dict]:
        return [e for f in self.frames if f["type"] == "events" and f["run_id"] == run_id for e in f["events"]]


async def watch(stack: AsyncExitStack, base_url: str, user, session_id: str) -> Watcher:
    ws = await stack.enter_async_context(connect(base_url.replace("http", "ws") + "/ws/chat/",
                                                 subprotocols=["bearer", token_for(user)]))
    watcher = Watcher(ws)
    await watcher.until(lambda f: f["type"] == "ready")
    await ws.send(json.dumps({"type": "watch", "session_id": session_id}))
    await watcher.until(lambda f: f["type"] == "watching")
    return watcher


async def read_until(lines, predicate) -> list[dict]:
    """SSE data objects read from `lines` up to the first one matching `predicate`."""
    seen = []
    async for line in lines:
        if line.startswith("data: "):
            seen.append(json.loads(line[6:]))
            if predicate(seen[-1]):
                return seen
    return seen


async def test_a_killed_workers_run_is_closed_billed_and_told_while_the_other_worker_goes_on(workers, alice, bob):
    """Guards against a run lost with its process: a usage row left `running` (no reaper), closed
    without the calls it completed (no live ledger), a session that never hears back, a slot that
    keeps refusing its user (~180 s of 429), silence on a resumed stream, and a reaper that closes
    a live worker's runs."""
    doomed, survivor = workers
    await adb(rule)  # the scripted model's price: the dead run's calls are billed at it
    async with httpx.AsyncClient(timeout=60) as client, AsyncExitStack() as stack:
        # alice's chat (a first answer), watched by a page served by the worker that will live ...
        first_answer = await client.post(f"{survivor.base_url}{RUNS}", headers=bearer(alice),
                                         data={"message": "What is 2+2?", "stream": "false"})
        assert first_answer.status_code == 200, first_answer.text
        session_id = first_answer.json()["session_id"]
        page = await watch(stack, survivor.base_url, alice, session_id)
        # ... and her delegated run in it, streaming from the worker about to die ...
        async with client.stream("POST", f"{doomed.base_url}{RUNS}", headers=bearer(alice),
                                 data={"message": RESEARCH, "session_id": session_id}) as response:
            lines = response.aiter_lines()
            first = await read_until(lines, lambda data: True)
            run_id = first[0]["run_id"]
            # ... until its first provider call (the leader's) completed and is on its row.
            live = await until(lambda: RunUsage.objects.filter(run_id=run_id, status="running", model_calls__gte=1)
                               .values("model_calls", "total_tokens").first())
            assert live is not None, "the run's completed call never reached its row"
            seen = first + await read_until(lines, lambda data: data["event"] == "TeamToolCallStarted")
            # bob's run on the other worker, live while alice's worker dies and is reaped.
            bobs = asyncio.create_task(client.post(f"{survivor.base_url}{RUNS}", headers=bearer(bob),
                                                   data={"message": RESEARCH, "stream": "false"}))
            await until(lambda: RunUsage.objects.filter(user=bob, status="running").exists())
            doomed.proc.send_signal(signal.SIGKILL)
            doomed.proc.wait()
        last_index = seen[-1]["event_index"]

        row = await until(lambda: RunUsage.objects.exclude(status="running").filter(run_id=run_id).first())
        assert row is not None, "the dead worker's run was never closed"
        assert (row.status, row.error_type, row.live_ledger) == ("error", "worker_lost", None)
        # Billed for what had completed: at least the calls on its row before the kill.
        assert row.model_calls >= live["model_calls"] and row.total_tokens >= live["total_tokens"] > 0
        calls = await adb(lambda: list(ModelCall.objects.filter(run_id=run_id).values("calls", "total_tokens",
                                                                                      "cost")))
        assert sum(c["calls"] for c in calls) == row.model_calls
        assert sum(c["total_tokens"] for c in calls) == row.total_tokens
        assert row.cost == sum(c["cost"] for c in calls) and row.cost > 0 and row.pricing == "priced"

        # The session keeps alice's message, with the interrupted answer.
        runs = await client.get(f"{survivor.base_url}/sessions/{session_id}/runs", headers=bearer(alice))
        assert runs.status_code == 200, runs.text
        assert [(r["run_input"], r["status"], r["content"]) for r in runs.json()][-1] == (RESEARCH, "ERROR",
                                                                                          INTERRUPTED)

        # The page watching her chat on the live worker heard the run end.
        finished = await page.until(lambda f: f["type"] == "run_finished" and f["run_id"] == run_id)
        assert (finished["status"], finished["error_type"]) == ("error", "worker_lost")
        told = page.events(run_id)
        assert told[0]["event"] == "TeamRunStarted" and told[-1]["event"] == "TeamRunError"
        assert told[-1]["error_type"] == "worker_lost" and told[-1]["content"] == INTERRUPTED

        # A resumed stream (on the surviving worker) ends with the terminal error, after what was seen.
        resumed = await client.post(f"{survivor.base_url}{RUNS}/{run_id}/resume", headers=bearer(alice),
                                    data={"last_event_index": str(last_index)})
        frames = [f for f in parse_sse(resumed.text) if f.event not in ("replay", "catch_up", "subscribed")]
        assert frames and frames[-1].event == "TeamRunError", resumed.text
        assert frames[-1].data["error_type"] == "worker_lost" and frames[-1].data["event_index"] > last_index

        # Her slot is free (one run per user here): a new run is admitted and answered.
        again = await client.post(f"{survivor.base_url}{RUNS}", headers=bearer(alice),
                                  data={"message": "What is 2+2?", "stream": "false"})
        assert again.status_code == 200, again.text

        # bob's run on the live worker was never touched.
        bob_response = await bobs
    assert bob_response.status_code == 200 and bob_response.json()["status"] == "COMPLETED"
    bob_row = await adb(RunUsage.objects.get, user=bob)
    assert (bob_row.status, bob_row.error_type) == ("completed", "")
    assert await adb(RunUsage.objects.filter(error_type="worker_lost").count) == 1
    assert await adb(RunUsage.objects.filter(user=alice, status="completed").count) == 2  # before and after
