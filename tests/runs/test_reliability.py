"""Reliability on the scripted model: retries mid-stream, the first-token deadline, cancel and
disconnect closing provider streams, and a database outage in the middle of a run."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connections

from chat.agents.scripted import provider_error
from chat.runs import RunRequest, cancel_run, start_run, teams
from chat.runs.finalize import FLUSH_TIMEOUT, retrying_writes
from metrics.models import RunUsage
from tests.conftest import adb, bearer, ended_usage, parse_sse
from tests.doubles.fake_openai import FakeProvider
from tests.live import live_server
from tests.outage import break_database, repair_database

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


async def test_a_retry_after_partial_output_discards_it_and_never_duplicates_text(api, alice, failures, recorder,
                                                                                 settings):
    """Guards against the partial text of a retried member call reaching the client as part of
    the answer, and against it reaching the leader: agno's delegation tool result is every
    delta the member streamed (the partial text is a prefix of the answer, so only an exact
    comparison of what the leader received catches it)."""
    settings.CIRKELLINE_RETRY_DELAY = 0.01
    failures.push(provider_error(503), label="research-specialist", when="mid-stream")
    response = await api.post(RUNS, data={"message": "Please research the history of Copenhagen"},
                              headers=bearer(alice))
    frames = parse_sse(response.text)
    member_frames = [f for f in frames if f.data.get("agent_id") == "research-specialist"]
    discards = [f for f in member_frames if f.event == "RunContentDiscarded"]
    assert len(discards) == 1
    streamed = [f.data["content"] for f in member_frames if f.event == "RunContent" and f.data.get("content")]
    partial = streamed[0]
    assert discards[0].data["discarded_characters"] == len(partial)
    final_member = next(f for f in member_frames if f.event == "RunCompleted").data["content"]
    assert "".join(streamed)[len(partial):] == final_member  # the retry's text, after the dropped part
    assert frames[-1].event == "TeamRunCompleted" and frames[-1].data["content"].count(final_member) == 1
    run_id = frames[-1].data["run_id"]
    leader_calls = [c for c in recorder.for_run(run_id) if c.model_label == "leader"]
    assert leader_calls[-1].tool_results == [final_member]  # the member's answer, once, nothing before it
    assert frames[-1].data["content"].endswith(f"found: {final_member}")
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "completed" and row.retries == 1


async def test_a_call_that_never_starts_answering_hits_the_first_token_deadline(api, alice, settings, use_latency):
    settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 0.2
    provider_latency = 30.0
    use_latency(provider_latency)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert loop.time() - started < provider_latency / 2  # it did not wait for the provider's answer
    assert response.status_code == 504
    assert "did not start answering" in response.json()["detail"]
    row = await adb(RunUsage.objects.get, run_id=response.json()["run_id"])
    assert row.status == "timed_out" and row.error_type == "timeout"


# The slow provider's answers stream for this long: a stream still open after half of it was
# not closed by the run stopping (a lower bound of the ratio, robust on a slow machine).
SLOW_ANSWER_SECONDS = 20.0


@pytest.fixture
def slow_provider(settings):
    """The fake provider streaming slowly (2 deltas a second), so a run can be caught mid-answer."""
    with FakeProvider(answer_words=int(SLOW_ANSWER_SECONDS * 2), tokens_per_second=2, keep_alive=False) as fake:
        settings.CIRKELLINE_MODEL = "openai-like:fake"
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        teams.prototype.cache_clear()
        yield fake


async def test_cancel_closes_the_provider_stream_and_cancels_the_member_run(alice, slow_provider):
    handle = await start_run(RunRequest(user_id=alice.pk, message="Please research Copenhagen"))
    member_run_id = None
    async for event in handle.events():
        if event.event == "RunContent" and event.content:
            member_run_id = event.run_id  # the member is mid-answer, its stream open
            break
    assert slow_provider.active_requests == 1
    assert await cancel_run(alice.pk, handle.run_id) == "cancelled"
    assert await slow_provider.wait_idle(SLOW_ANSWER_SECONDS / 2), "the provider stream stayed open after cancel"
    rest = [event async for event in handle.events()]
    assert rest[-1].event == "TeamRunCancelled"
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    # the leader's delegation (reported) and the member's call, cut off mid-answer (estimated)
    assert row.status == "cancelled" and row.member_runs == 1 and row.model_calls == 2
    assert 0 < row.estimated_tokens < row.total_tokens
    # the member did not carry on in the background: no further provider calls arrive
    assert slow_provider.total_requests == 2
    assert member_run_id is not None


@pytest.mark.live
async def test_closing_the_connection_cancels_the_run_and_its_provider_stream(alice, slow_provider):
    """With CIRKELLINE_ON_DISCONNECT=cancel, a client going away stops its run (by default the run
    goes on: tests/api/test_resume.py)."""
    env = {"CIRKELLINE_MODEL": "openai-like:fake", "CIRKELLINE_MODEL_BASE_URL": slow_provider.base_url,
           "CIRKELLINE_ON_DISCONNECT": "cancel"}
    with live_server(env) as base:
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream("POST", f"{base}{RUNS}", data={"message": "Please research Copenhagen"},
                                     headers=bearer(alice)) as response:
                run_id = None
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and '"event":"RunContent"' in line:
                        run_id = line.split('"parent_run_id":"')[1].split('"')[0]
                        break
            # leaving the block closed the connection mid-stream
        assert await slow_provider.wait_idle(SLOW_ANSWER_SECONDS / 2), "the stream stayed open after the disconnect"

        row = await ended_usage(run_id)  # the server ends the row as it stops the run
    assert row is not None and row.status == "cancelled"
    assert slow_provider.total_requests == 2


async def test_the_partial_answer_of_a_cancelled_run_stays_in_the_session(api, alice, use_latency):
    use_latency(0.2)
    handle = await start_run(RunRequest(user_id=alice.pk, message="Please research Copenhagen"))
    async for event in handle.events():
        if event.event == "RunCompleted":  # the member finished; the leader is about to answer
            await cancel_run(alice.pk, handle.run_id)
    detail = await api.get(f"/sessions/{handle.session_id}/runs", headers=bearer(alice))
    runs = {r["run_id"]: r for r in detail.json()}
    assert runs[handle.run_id]["status"] == "CANCELLED"
    member = next(r for r in runs.values() if r.get("agent_id") == "research-specialist")
    assert member["status"] == "COMPLETED" and member["content"]


@pytest.fixture
def postgres_only():
    if connections["default"].vendor != "postgresql":
        pytest.skip("the outage is simulated on PostgreSQL (connection refused); CI runs this in its PostgreSQL job")


async def test_a_database_outage_mid_run_gives_a_clear_error_not_a_hang(api, alice, postgres_only, use_latency,
                                                                        settings):
    settings.CIRKELLINE_FLUSH_RETRY_INTERVAL = 0.2
    use_latency(1.0)  # the run's final write comes two calls after RunStarted, well after the break
    port = django_settings.DATABASES["default"]["PORT"]
    pool_timeout = django_settings.DATABASES["default"]["OPTIONS"]["pool"]["timeout"]
    headers = bearer(alice)
    await api.get("/sessions", headers=headers)  # alice is known to the auth cache
    handle = await start_run(RunRequest(user_id=alice.pk, message="Please research Copenhagen"))
    loop = asyncio.get_running_loop()
    try:
        events = []
        async for event in handle.events():
            events.append(event)
            if event.event == "RunStarted":
                await adb(break_database)
                broken_at = loop.time()
        # the write failed on the refused connection; it did not wait out the flush timeout
        assert loop.time() - broken_at < FLUSH_TIMEOUT
        assert events[-1].event == "TeamRunError" and events[-1].error_type == "internal"
        assert "could not be saved" in events[-1].content
        refused = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=headers)
        assert refused.status_code == 503 and "database" in refused.json()["detail"].lower()
    finally:
        await adb(repair_database, port, pool_timeout)
    # once the database is back, the run is stored after all (nothing vanishes); the request
    # refused at its session claim ran nothing and left nothing
    stored = await _eventually(lambda: set(RunUsage.objects.ended().values_list("run_id", flat=True)), 1)
    assert stored == {handle.run_id}
    assert await adb(lambda: RunUsage.objects.get(run_id=handle.run_id).status) == "completed"


async def _eventually(query, count: int, within: float = 60.0):
    """The result of `query` once it has `count` items (the background retry runs every 0.2 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await adb(query)
        if len(result) >= count or loop.time() > deadline:
            return result
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("stream", [False, True])
async def test_rows_the_database_refuses_still_leave_the_usage_row(api, alice, monkeypatch, stream):
    """A write that fails on its data is not retried (it would fail again) and does not take the
    usage row with it: the run is billed, and the client is told its answer was not saved."""
    from django.db import DataError

    from chat.models import ChatRun
    from chat.storage import buffer

    def refuse(*args, **kwargs):
        raise DataError("simulated: the database refuses this row")

    monkeypatch.setattr(buffer, "persist", refuse)
    response = await api.post(RUNS, data={"message": "Please research Copenhagen", "stream": str(stream).lower()},
                              headers=bearer(alice))
    if stream:
        frames = parse_sse(response.text)
        run_id, terminal = frames[0].data["run_id"], frames[-1]
        assert terminal.event == "TeamRunError" and terminal.data["error_type"] == "internal"
        detail = terminal.data["content"]
    else:
        body = response.json()
        assert response.status_code == 500
        run_id, detail = body["run_id"], body["detail"]
    assert "refused" in detail and "usage was recorded" in detail
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert (row.status, row.model_calls, row.delegations) == ("completed", 3, 1) and row.total_tokens > 0
    # Of the run's rows only its own, as it was stored when the run started, stays: the user's
    # message, its final status, and why there is no answer (never left RUNNING).
    stored = await adb(lambda: list(ChatRun.objects.values("run_id", "status", "payload")))
    assert [(r["run_id"], r["status"], r["payload"]["status"]) for r in stored] == [(run_id, "COMPLETED", "COMPLETED")]
    assert stored[0]["payload"]["input"]["input_content"] == "Please research Copenhagen"
    assert "refused" in stored[0]["payload"]["content"]
    assert retrying_writes() == 0  # nothing left retrying a write that cannot succeed
