"""Real servers: a client drops its SSE connection mid-answer and resumes the run elsewhere, with
exactly the stored answer at the end. With REDIS_URL (the CI PostgreSQL + Redis job) the run
streams on one server process and is resumed on another (the run's Redis Stream); without, on the
same process (its in-process log)."""

from __future__ import annotations

import json
from contextlib import ExitStack

import httpx
import pytest
from django.conf import settings

from metrics.models import RunUsage
from tests.conftest import adb, bearer, parse_sse
from tests.live import live_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

SLOW = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": "0.4"}
RESEARCH = "Please research the history of Copenhagen"


@pytest.fixture
def servers():
    """(where the run starts, where it is resumed)."""
    with ExitStack() as stack:
        first = stack.enter_context(live_server(SLOW))
        second = stack.enter_context(live_server(SLOW)) if settings.REDIS_URL else first
        yield first, second


def answer(frames) -> str:
    return "".join(f.data.get("content") or "" for f in frames if f.event == "TeamRunContent")


async def stream_until_content(client: httpx.AsyncClient, base: str, user) -> tuple[list[str], dict]:
    """Start a streamed run and leave after its first leader text delta: (the SSE text read, its last event)."""
    chunks: list[str] = []
    async with client.stream("POST", f"{base}/teams/cirkelline/runs", data={"message": RESEARCH},
                             headers=bearer(user)) as response:
        async for line in response.aiter_lines():
            chunks.append(line + "\n")
            if line.startswith("data: ") and '"event":"TeamRunContent"' in line:
                break
    # leaving the block dropped the connection mid-answer
    text = "".join(chunks)
    text = text[:text.rindex("\n") + 1] + "\n"
    return text, json.loads(text.strip().rsplit("data: ", 1)[1])


async def test_a_dropped_stream_is_resumed_on_another_worker_with_the_stored_answer(servers, alice):
    """Guards against a run lost with its connection (the run stopped), a resume that only works on
    the worker running it, and a resumed answer with a gap or a repeated word."""
    first, second = servers
    async with httpx.AsyncClient(timeout=60) as client:
        seen_text, last = await stream_until_content(client, first, alice)
        seen = parse_sse(seen_text)
        run_id, session_id = last["run_id"], last["session_id"]
        response = await client.post(f"{second}/teams/cirkelline/runs/{run_id}/resume", headers=bearer(alice),
                                     data={"last_event_index": last["event_index"], "session_id": session_id})
        assert response.status_code == 200
        frames = parse_sse(response.text)
        names = [f.event for f in frames]
        rest = [f for f in frames if f.event not in ("catch_up", "subscribed", "replay")]
        assert rest[0].data["event_index"] > last["event_index"] and names[-1] == "TeamRunCompleted"
        stored = (await client.get(f"{second}/teams/cirkelline/runs/{run_id}", headers=bearer(alice))).json()
    assert answer(seen + rest) == rest[-1].data["content"] == stored["content"]
    assert stored["status"] == "COMPLETED"
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "completed"


async def test_an_ended_run_is_replayed_on_another_worker(servers, alice, bob):
    """Guards against the replay of an ended run living only in the memory of the worker that ran
    it, and against another user reading it there."""
    first, second = servers
    async with httpx.AsyncClient(timeout=60) as client:
        full = parse_sse((await client.post(f"{first}/teams/cirkelline/runs", data={"message": "What is 2+2?"},
                                            headers=bearer(alice))).text)
        run_id = full[-1].data["run_id"]
        replay = await client.post(f"{second}/teams/cirkelline/runs/{run_id}/resume", headers=bearer(alice),
                                   data={"last_event_index": "-1"})
        strangers = await client.post(f"{second}/teams/cirkelline/runs/{run_id}/resume", headers=bearer(bob))
    frames = parse_sse(replay.text)
    assert frames[0].event == "replay" and frames[0].data["status"] == "COMPLETED"
    assert [f.data for f in frames[1:]] == [f.data for f in full]
    assert strangers.status_code == 404
