"""Real servers: a run pauses on one server process and is continued on another, from the database
alone (nothing of a paused run stays in a process), and the continued stream resumes there."""

from __future__ import annotations

import json
from contextlib import ExitStack

import httpx
import pytest

from metrics.models import RunUsage
from tests.conftest import adb, bearer, parse_sse
from tests.live import live_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

ENV = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": "0"}


@pytest.fixture
def servers():
    with ExitStack() as stack:
        yield stack.enter_context(live_server(ENV)), stack.enter_context(live_server(ENV))


async def test_a_run_paused_on_one_worker_is_continued_on_another(servers, alice, bob):
    first, second = servers
    async with httpx.AsyncClient(timeout=60) as client:
        started = await client.post(f"{first}/teams/cirkelline/runs", data={"message": "Please ask me anything"},
                                    headers=bearer(alice))
        paused = parse_sse(started.text)[-1].data
        assert paused["event"] == "TeamRunPaused"
        run_id = paused["run_id"]
        paused_row = await adb(RunUsage.objects.get, run_id=run_id)
        assert paused_row.status == "paused"

        requirements = paused["requirements"]
        requirements[0]["user_input_schema"][0]["value"] = "bridges"
        body = {"requirements": json.dumps(requirements), "session_id": paused["session_id"]}
        refused = await client.post(f"{second}/teams/cirkelline/runs/{run_id}/continue", data=body,
                                    headers=bearer(bob))
        assert refused.status_code == 404
        continued = await client.post(f"{second}/teams/cirkelline/runs/{run_id}/continue", data=body,
                                      headers=bearer(alice))
        frames = parse_sse(continued.text)
        assert frames[-1].event == "TeamRunCompleted" and "bridges" in frames[-1].data["content"]

        row = await adb(RunUsage.objects.get, run_id=run_id)
        assert row.status == "completed" and row.worker != paused_row.worker
        assert row.total_tokens > paused_row.total_tokens

        # The continued part's stream, resumed where the pause left it, on the worker that ran it.
        resumed = await client.post(f"{second}/teams/cirkelline/runs/{run_id}/resume",
                                    data={"last_event_index": str(paused["event_index"])}, headers=bearer(alice))
        replayed = [f for f in parse_sse(resumed.text) if f.data.get("event_index") is not None]
        assert [f.data["event_index"] for f in replayed] == [f.data["event_index"] for f in frames]
        assert replayed[-1].data["content"] == frames[-1].data["content"]
