"""A session id is claimed by its owner when the run is admitted, before any model call.

Session ids are globally unique (docs/ARCHITECTURE.md says why): whoever claims an id first
owns it, and anyone else's run with that id is refused at once with 404, having run nothing
and cost nothing, also while the owner's first run on it is still in progress.
"""

from __future__ import annotations

import asyncio

import pytest

from chat.errors import SessionNotFound
from chat.models import ChatRun, ChatSession
from chat.runs import RunHandle, RunRequest, live_runs_of, start_run
from chat.runs.service import starting_run_count
from metrics.models import RunUsage
from tests.conftest import adb, bearer, error_body, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


def _owner_and_runs(session_id: str) -> tuple[str, list[str]]:
    session = ChatSession.objects.select_related("user").get(session_id=session_id)
    runs = list(ChatRun.objects.filter(session=session, parent_run_id=None).values_list("run_id", flat=True))
    return session.user.username, runs


async def _in_first_model_call(handle: RunHandle, recorder) -> None:
    """Wait (on events, not time) until the run's first provider call is under way."""
    async for event in handle.events():
        if event.event == "TeamRunStarted":
            break
    assert recorder.for_run(handle.run_id), "the leader's first call has started"


@pytest.mark.parametrize("client_id", [None, "alice-chat-1"], ids=["server-generated id", "client-chosen id"])
@pytest.mark.parametrize("stream", ["true", "false"])
async def test_bob_cannot_take_over_a_session_during_its_first_run(api, alice, bob, recorder, use_latency,
                                                                   client_id, stream):
    """Guards against the takeover: a session row written only when its first run ended left
    the id unclaimed meanwhile, so bob's run with it was accepted and became the owner, and
    alice's run was billed but never stored."""
    use_latency(0.5)  # alice's provider calls are slow: her run is live while bob posts
    handle = await start_run(RunRequest(user_id=alice.pk, message="Please research Copenhagen",
                                                      session_id=client_id))
    session_id = handle.session_id
    await _in_first_model_call(handle, recorder)

    refused = await api.post(RUNS, data={"message": "mine now", "session_id": session_id, "stream": stream},
                             headers=bearer(bob))
    assert not handle.is_finished, "bob was answered while alice's run was still live"
    assert refused.status_code == 404 and error_body(refused) == {"detail": "Session not found."}
    assert all(call.team_run_id == handle.run_id for call in recorder.calls)  # nothing ran for bob
    assert not live_runs_of(bob.pk)  # his admission slot was given back
    assert starting_run_count() == 0

    result = await handle.wait()
    assert result.status == "completed" and not result.storage_failed
    assert await adb(_owner_and_runs, session_id) == ("alice", [handle.run_id])
    assert await adb(RunUsage.objects.filter(user=bob).count) == 0
    assert await adb(lambda: RunUsage.objects.get(run_id=handle.run_id).status) == "completed"
    mine = await api.get(f"/sessions/{session_id}", headers=bearer(alice))
    assert mine.status_code == 200 and mine.json()["session_id"] == session_id
    assert (await api.get(f"/sessions/{session_id}", headers=bearer(bob))).status_code == 404


async def test_a_client_chosen_id_used_by_alice_is_refused_to_bob(api, alice, bob, recorder, settings):
    settings.CIRKELLINE_MAX_RUNS_PER_USER = 1  # a refused run that kept its slot would block bob's next
    first = await api.post(RUNS, data={"message": "hello", "session_id": "team-notes", "stream": "false"},
                           headers=bearer(alice))
    assert first.status_code == 200 and first.json()["session_id"] == "team-notes"
    calls = len(recorder.calls)

    for stream in ("true", "false"):
        refused = await api.post(RUNS, data={"message": "hi", "session_id": "team-notes", "stream": stream},
                                 headers=bearer(bob))
        assert refused.status_code == 404 and error_body(refused) == {"detail": "Session not found."}
    assert len(recorder.calls) == calls
    assert await adb(RunUsage.objects.filter(user=bob).count) == 0
    assert await adb(_owner_and_runs, "team-notes") == ("alice", [first.json()["run_id"]])
    own = await api.post(RUNS, data={"message": "my own", "stream": "false"}, headers=bearer(bob))
    assert own.status_code == 200 and own.json()["session_id"] != "team-notes"

    again = await api.post(RUNS, data={"message": "and again", "session_id": "team-notes", "stream": "false"},
                           headers=bearer(alice))
    assert again.status_code == 200
    assert (await adb(_owner_and_runs, "team-notes"))[1] == [first.json()["run_id"], again.json()["run_id"]]


async def test_two_users_claiming_one_new_id_at_once_leave_one_owner(alice, bob, recorder, use_latency):
    """Guards against a claim that is not atomic (read, then insert): both runs would start."""
    use_latency(0.2)
    outcomes = await asyncio.gather(
        *(start_run(RunRequest(user_id=user.pk, message="hello", session_id="contested"))
          for user in (alice, bob) for _ in range(3)),
        return_exceptions=True,
    )
    handles = [o for o in outcomes if isinstance(o, RunHandle)]
    refused = [o for o in outcomes if isinstance(o, SessionNotFound)]
    assert len(handles) == 3 and len(refused) == 3, outcomes
    owner = handles[0].user_id
    assert all(h.user_id == owner for h in handles)
    results = await asyncio.gather(*(h.wait() for h in handles))
    assert [r.status for r in results] == ["completed"] * 3 and not any(r.storage_failed for r in results)
    username, runs = await adb(_owner_and_runs, "contested")
    assert username == ("alice" if owner == alice.pk else "bob") and sorted(runs) == sorted(h.run_id for h in handles)
    assert {c.team_run_id for c in recorder.calls} == {h.run_id for h in handles}


async def test_a_session_is_not_found_on_the_api_until_its_first_run_is_stored(api, alice, recorder, use_latency):
    """Guards against the claim showing through: agent-ui reads GET /sessions/{id}/runs while the
    first answer streams; a 200 [] there (the claimed row, no run yet) replaced its chat, and the
    answer never rendered. AgentOS answers 404 until the session is stored, and so do we."""
    use_latency(0.3)
    handle = await start_run(RunRequest(user_id=alice.pk, message="Trip to Aarhus\nin May please"))
    await _in_first_model_call(handle, recorder)
    url = f"/sessions/{handle.session_id}"
    answers = [
        await api.get(f"{url}/runs", headers=bearer(alice)),
        await api.get(url, headers=bearer(alice)),
        await api.post(f"{url}/rename", json={"session_name": "Too early"}, headers=bearer(alice)),
        await api.delete(url, headers=bearer(alice)),
    ]
    assert [r.status_code for r in answers] == [404] * 4
    assert all(error_body(r) == {"detail": "Session not found."} for r in answers)
    assert (await api.get("/sessions", headers=bearer(alice))).json()["data"] == []
    assert not handle.is_finished, "the run ended before the session was asked for"
    # The claim itself is there all along: the id is alice's, named after her first message.
    assert await adb(lambda: ChatSession.objects.get(session_id=handle.session_id).session_name) == "Trip to Aarhus"

    await handle.wait()
    listed = (await api.get("/sessions", headers=bearer(alice))).json()["data"]
    assert [(s["session_id"], s["session_name"]) for s in listed] == [(handle.session_id, "Trip to Aarhus")]
    runs = await api.get(f"{url}/runs", headers=bearer(alice))
    assert runs.status_code == 200 and [r["run_id"] for r in runs.json() if r.get("team_id")] == [handle.run_id]
    detail = await api.get(url, headers=bearer(alice))
    assert detail.status_code == 200 and detail.json()["session_name"] == "Trip to Aarhus"


async def test_a_session_deleted_while_a_later_run_is_live_is_not_brought_back(api, alice, recorder, use_latency):
    """Guards against the final write resurrecting a session its owner deleted mid-run."""
    first = await start_run(RunRequest(user_id=alice.pk, message="hello"))
    await first.wait()
    use_latency(0.3)
    handle = await start_run(RunRequest(user_id=alice.pk, message="Please research Copenhagen",
                                        session_id=first.session_id))
    await _in_first_model_call(handle, recorder)
    deleted = await api.delete(f"/sessions/{handle.session_id}", headers=bearer(alice))
    assert deleted.status_code == 204

    events = [event async for event in handle.events()]
    result = await handle.wait()
    assert events[-1].event == "TeamRunCompleted" and result.status == "completed"
    assert not result.storage_failed
    assert not await adb(ChatSession.objects.filter(session_id=handle.session_id).exists)
    assert await adb(ChatRun.objects.count) == 0
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)  # the run is billed all the same
    assert (row.status, row.session_id, row.model_calls) == ("completed", handle.session_id, 3)
    assert (await api.get(f"/sessions/{handle.session_id}", headers=bearer(alice))).status_code == 404


async def test_a_streamed_run_names_its_claimed_session_in_every_frame(api, alice):
    response = await api.post(RUNS, data={"message": "hello", "session_id": "named-by-client"},
                              headers=bearer(alice))
    frames = parse_sse(response.text)
    assert {f.data["session_id"] for f in frames if "session_id" in f.data} == {"named-by-client"}
    assert frames[-1].event == "TeamRunCompleted"
