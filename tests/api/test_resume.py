"""Resuming a run's stream (`POST /teams/{team_id}/runs/{run_id}/resume`), in AgentOS's three cases:
live (catch up, then live), ended with its log kept (replay), only in the database (the stored run);
a client that goes away no longer stops its run; only the owner resumes."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from chat.api import sse
from chat.runs import RunRequest, eventlog, eventlog_redis, live_run, start_run
from metrics.models import RunUsage
from tests.conftest import Frame, adb, bearer, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

RESEARCH = "Please research the history of Copenhagen"
NOTICES = {"catch_up", "subscribed", "replay"}


def resume_url(run_id: str, team_id: str = "cirkelline") -> str:
    return f"/teams/{team_id}/runs/{run_id}/resume"


def answer_of(frames: list[Frame]) -> str:
    return "".join(f.data.get("content") or "" for f in frames if f.event == "TeamRunContent")


def events_of(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.event not in NOTICES]


async def first_entries(handle, count: int) -> list[tuple[int, str, str]]:
    """The log entries of a live run until at least `count` of them, as its client saw them."""
    seen: list = []
    async for batch in handle.log.follow():
        seen.extend(batch)
        if len(seen) >= count:
            return seen
    return seen


async def expire_logs() -> None:
    """Every run's log gone, as CIRKELLINE_EVENT_LOG_TTL seconds after the end (this process's and Redis's)."""
    eventlog._kept.clear()
    if settings.REDIS_URL:
        sink = eventlog_redis.sink()
        await sink.idle()  # the last writes landed
        async for key in sink.client.scan_iter(f"{settings.CIRKELLINE_REDIS_PREFIX}:log:*"):
            await sink.client.delete(key)


def as_frames(entries) -> list[Frame]:
    return parse_sse(sse.frames(entries).decode())


async def test_a_live_run_is_caught_up_then_followed_live_without_a_gap_or_a_repeat(api, alice, use_latency):
    """Guards against a resumed stream repeating events the client had (a duplicated word), missing
    some, or stopping before the run's end."""
    use_latency(0.3)
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    seen = as_frames(await first_entries(handle, 3))
    last = seen[-1].data["event_index"]
    response = await api.post(resume_url(handle.run_id), headers=bearer(alice),
                              data={"last_event_index": str(last), "session_id": handle.session_id})
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    frames = parse_sse(response.text)
    names = [f.event for f in frames]
    assert "subscribed" in names
    rest = events_of(frames)
    assert [f.data["event_index"] for f in rest] == sorted({f.data["event_index"] for f in rest})
    assert rest[0].data["event_index"] > last and rest[-1].event == "TeamRunCompleted"
    assert answer_of(seen + rest) == rest[-1].data["content"]
    if names[0] == "catch_up":  # events the client missed meanwhile, before the live ones
        assert frames[0].data["run_id"] == handle.run_id and frames[0].data["missed_events"] > 0
    subscribed = frames[names.index("subscribed")].data
    assert subscribed["status"] == "running" and subscribed["run_id"] == handle.run_id


async def test_an_ended_run_is_replayed_from_its_log(api, alice):
    """Guards against a client that reconnects after the end getting nothing (or everything again)."""
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    await handle.wait()
    full = as_frames(handle.log.entries)
    middle = full[len(full) // 2].data["event_index"]
    response = await api.post(resume_url(handle.run_id), headers=bearer(alice),
                              data={"last_event_index": str(middle)})
    frames = parse_sse(response.text)
    assert frames[0].event == "replay"
    meta = frames[0].data
    assert (meta["status"], meta["run_id"], meta["last_event_index_requested"]) == ("COMPLETED", handle.run_id, middle)
    assert meta["total_buffered"] == len(full) and meta["total_events"] == len(frames) - 1
    assert [f.data for f in frames[1:]] == [f.data for f in full if f.data["event_index"] > middle]
    everything = parse_sse((await api.post(resume_url(handle.run_id), headers=bearer(alice))).text)
    assert [f.data for f in everything[1:]] == [f.data for f in full]


async def test_the_last_event_id_header_works_as_last_event_index(api, alice):
    """Guards against the standard SSE reconnect header being ignored (a client re-sent everything)."""
    handle = await start_run(RunRequest(user_id=alice.pk, message="What is 2+2?"))
    await handle.wait()
    full = as_frames(handle.log.entries)
    last = full[-2].data["event_index"]
    response = await api.post(resume_url(handle.run_id), headers={**bearer(alice), "Last-Event-ID": str(last)})
    frames = parse_sse(response.text)
    assert [f.event for f in frames] == ["replay", "TeamRunCompleted"]
    query = await api.get(f"{resume_url(handle.run_id)}?last_event_index={last}", headers=bearer(alice))
    assert [f.event for f in parse_sse(query.text)] == ["replay", "TeamRunCompleted"]


async def test_a_run_only_in_the_database_is_replayed_as_its_stored_answer(api, alice):
    """Guards against a resume after the log expired saying nothing: the stored run comes back as
    its terminal event, with the whole answer, under the index it was streamed with."""
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    await handle.wait()
    streamed = as_frames(handle.log.entries)
    await expire_logs()
    response = await api.post(resume_url(handle.run_id), headers=bearer(alice),
                              data={"last_event_index": "3", "session_id": handle.session_id})
    frames = parse_sse(response.text)
    assert [f.event for f in frames] == ["replay", "TeamRunCompleted"]
    assert frames[0].data == {"event": "replay", "run_id": handle.run_id, "status": "COMPLETED", "total_events": 1,
                              "message": "Run completed. Replaying stored events from database."}
    terminal = frames[1].data
    assert terminal["event_index"] == streamed[-1].data["event_index"]
    assert terminal["content"] == streamed[-1].data["content"] == answer_of(streamed)
    assert (terminal["run_id"], terminal["session_id"]) == (handle.run_id, handle.session_id)
    past = await api.post(resume_url(handle.run_id), headers=bearer(alice),
                          data={"last_event_index": str(terminal["event_index"])})
    assert [f.event for f in parse_sse(past.text)] == ["replay"]  # it had everything already


async def test_a_run_answered_without_streaming_has_no_events_as_agentos_says(api, alice):
    """Guards against inventing an event stream for a stream=false run (AgentOS: one `replay`
    notice with total_events 0, poll the run instead)."""
    done = await api.post("/teams/cirkelline/runs", data={"message": "What is 2+2?", "stream": "false"},
                          headers=bearer(alice))
    run_id = done.json()["run_id"]
    response = await api.post(resume_url(run_id), headers=bearer(alice))
    frames = parse_sse(response.text)
    assert [f.data for f in frames] == [{
        "event": "replay", "run_id": run_id, "status": "COMPLETED", "total_events": 0,
        "message": "Run COMPLETED with no stored events: a run submitted without streaming keeps only its final "
                   "output."}]


async def test_a_live_run_answered_without_streaming_says_to_poll(api, alice, use_latency):
    use_latency(0.5)
    handle = await start_run(RunRequest(user_id=alice.pk, message="What is 2+2?", streamed=False))
    frames = parse_sse((await api.post(resume_url(handle.run_id), headers=bearer(alice))).text)
    assert [f.data["status"] for f in frames] == ["RUNNING"] and "Poll the run endpoint" in frames[0].data["message"]
    await handle.wait()


async def test_only_the_owner_resumes_and_the_ids_must_match(api, alice, bob):
    """Guards against bob reading alice's answer by its run id, and against a run resumed under
    another team or session than its own."""
    handle = await start_run(RunRequest(user_id=alice.pk, message="What is 2+2?"))
    await handle.wait()
    other = await start_run(RunRequest(user_id=alice.pk, message="What is 3+3?"))
    await other.wait()
    refused = [
        await api.post(resume_url(handle.run_id), headers=bearer(bob)),
        await api.post(resume_url(handle.run_id), headers=bearer(alice), data={"session_id": other.session_id}),
        await api.post(resume_url("no-such-run"), headers=bearer(alice)),
    ]
    assert [r.status_code for r in refused] == [404, 404, 404]
    assert {r.json()["detail"] for r in refused} == {"Run not found."}
    await expire_logs()  # the same answers from the database
    assert (await api.post(resume_url(handle.run_id), headers=bearer(bob))).status_code == 404
    assert (await api.post(resume_url(handle.run_id), headers=bearer(alice),
                           data={"session_id": other.session_id})).status_code == 404
    assert (await api.post(resume_url(handle.run_id, "nope"), headers=bearer(alice))).status_code == 404
    assert (await api.post(resume_url(handle.run_id))).status_code == 401


@pytest.mark.parametrize("value", ["x", "-2", "1.5", "true", " 41", "1" * 16])
async def test_a_malformed_index_is_a_400(api, alice, value):
    handle = await start_run(RunRequest(user_id=alice.pk, message="What is 2+2?"))
    await handle.wait()
    response = await api.post(resume_url(handle.run_id), headers=bearer(alice), data={"last_event_index": value})
    assert response.status_code == 400 and "last_event_index" in response.json()["detail"]
    header = await api.post(resume_url(handle.run_id), headers={**bearer(alice), "Last-Event-ID": value})
    assert header.status_code == 400 and "Last-Event-ID" in header.json()["detail"]


async def test_a_json_body_works_too(api, alice):
    handle = await start_run(RunRequest(user_id=alice.pk, message="What is 2+2?"))
    await handle.wait()
    full = as_frames(handle.log.entries)
    response = await api.post(resume_url(handle.run_id), headers={**bearer(alice), "Content-Type": "application/json"},
                              content=json.dumps({"last_event_index": full[-2].data["event_index"],
                                                  "session_id": handle.session_id}))
    assert [f.event for f in parse_sse(response.text)] == ["replay", "TeamRunCompleted"]


# --- a client that goes away ---------------------------------------------------------------


async def _stream_then_leave(handle) -> list[bytes]:
    body = sse.stream(handle)
    chunks = [await body.__anext__(), await body.__anext__()]
    await body.aclose()  # what Django does when the client goes away
    return chunks


async def test_a_client_that_goes_away_leaves_its_run_going_to_be_stored(api, alice, use_latency):
    """Guards against a dropped connection (a closed tab, a network blip) stopping the run and
    losing its answer: it completes, is stored and billed, and can be resumed."""
    use_latency(0.2)
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    chunks = await _stream_then_leave(handle)
    result = await handle.wait()
    assert result.status == "completed"
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    assert row.status == "completed"
    seen = parse_sse(b"".join(chunks).decode())
    rest = parse_sse((await api.post(resume_url(handle.run_id), headers=bearer(alice),
                                     data={"last_event_index": seen[-1].data["event_index"]})).text)
    assert answer_of(seen + events_of(rest)) == rest[-1].data["content"]


async def test_on_disconnect_cancel_stops_the_run_when_its_client_goes_away(alice, use_latency, settings):
    """Guards against CIRKELLINE_ON_DISCONNECT=cancel being ignored (API users who want runs tied
    to their connection, as before)."""
    settings.CIRKELLINE_ON_DISCONNECT = "cancel"
    use_latency(0.2)
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    await _stream_then_leave(handle)
    result = await handle.wait()
    assert result.status == "cancelled"
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    assert row.status == "cancelled"
    assert live_run(handle.run_id) is None
