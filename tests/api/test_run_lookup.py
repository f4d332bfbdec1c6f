"""Looking up and cancelling a run that is still running: only its owner ever sees it."""

from __future__ import annotations

import json

import httpx
import pytest

from chat.runs import RunRequest, live_run, start_run
from metrics.models import RunUsage
from tests.conftest import adb, bearer, error_body
from tests.live import live_server

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
# Long enough that the run is certainly still in its first provider call while the test looks it
# up (a slow machine only makes the window wider); the test ends it with a cancel, not a wait.
PROVIDER_LATENCY = 30.0


async def test_bob_gets_404_for_alices_live_run_and_cannot_cancel_it(api, alice, bob, use_latency):
    """Guards against removing the owner check on the live-run lookup in chat/api/views.py run_detail
    (bob would get alice's partial answer with a 200) and on the live cancel (bob would stop it).

    Only finished runs were looked up by a second user before; a live run takes another path
    (the in-process registry), so it needs its own test.
    """
    use_latency(PROVIDER_LATENCY)
    handle = await start_run(RunRequest(user_id=alice.pk, message="my secret plans"))
    run_url = f"{RUNS}/{handle.run_id}"
    try:
        mine = await api.get(run_url, headers=bearer(alice))
        assert mine.status_code == 200, mine.text
        assert mine.json()["status"] == "RUNNING"  # the live path answered, not the stored one

        theirs = await api.get(run_url, headers=bearer(bob))
        unknown = await api.get(f"{RUNS}/no-such-run", headers=bearer(bob))
        assert theirs.status_code == 404 and error_body(theirs) == {"detail": "Run not found."}
        assert error_body(unknown) == error_body(theirs)  # nothing tells bob the run exists

        cancel = await api.post(f"{run_url}/cancel", headers=bearer(bob))
        assert cancel.status_code == 404 and error_body(cancel) == {"detail": "Run not found."}
        assert not handle.is_finished and live_run(handle.run_id) is handle
    finally:
        stopped = await api.post(f"{run_url}/cancel", headers=bearer(alice))
    assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    assert (row.user_id, row.status) == (alice.pk, "cancelled")
    assert await adb(RunUsage.objects.filter(user=bob).count) == 0


async def test_a_run_is_on_record_from_its_admission(api, alice, use_latency):
    """Guards against writing a run's rows only at its end (chat.runs.service.start_run passing no
    running rows to the claim): a server process killed mid-run would leave nothing behind.

    While the run is in its first provider call, its usage row is `running` and names this worker,
    and its session holds the user's message as a RUNNING run (which the session routes do not
    show yet); at the end that same row (still one) has its terminal status."""
    from chat.models import ChatRun
    from chat.runs.worker import worker_id

    use_latency(PROVIDER_LATENCY)
    handle = await start_run(RunRequest(user_id=alice.pk, message="what is on record?"))
    try:
        usage = await adb(lambda: list(RunUsage.objects.filter(run_id=handle.run_id).values()))
        run = await adb(lambda: list(ChatRun.objects.filter(run_id=handle.run_id).values("status", "payload")))
        runs = await api.get(f"/sessions/{handle.session_id}/runs", headers=bearer(alice))
    finally:
        handle.abort("cancelled")
        await handle.wait()
    assert [(u["status"], u["worker"], u["finished_at"], u["session_id"]) for u in usage] == [
        ("running", worker_id(), None, handle.session_id)]
    assert [(r["status"], r["payload"]["input"]["input_content"]) for r in run] == [("RUNNING", "what is on record?")]
    # The session routes show runs once they end, as AgentOS (a reader mid-stream gets no empty answer).
    assert runs.status_code == 404
    ended = await adb(lambda: list(RunUsage.objects.filter(run_id=handle.run_id).values("status", "finished_at")))
    assert len(ended) == 1 and ended[0]["status"] == "cancelled" and ended[0]["finished_at"] is not None
    stored = await adb(lambda: list(ChatRun.objects.filter(run_id=handle.run_id).values_list("status", flat=True)))
    assert stored == ["CANCELLED"]


@pytest.mark.live
async def test_a_live_run_is_found_through_another_server_process(alice, bob):
    """Guards against answering GET /teams/{team}/runs/{run_id} from this process's registry
    alone (chat.api.views.run_detail): behind a proxy the lookup lands on another worker, which
    answered 404 for a run that was running. It answers the running status now, to the owner
    only, from the row the run has from its admission on."""
    env = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": str(PROVIDER_LATENCY)}
    with live_server(env) as first, live_server(env) as second:
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream("POST", f"{first}{RUNS}", data={"message": "where am I running?"},
                                     headers=bearer(alice)) as response:
                # Kept referenced: a collected line iterator closes the response, and so the run.
                lines = response.aiter_lines()
                async for line in lines:
                    if line.startswith("data: "):
                        started = json.loads(line[6:])
                        break
                run_id = started["run_id"]
                mine = await client.get(f"{second}{RUNS}/{run_id}", headers=bearer(alice))
                theirs = await client.get(f"{second}{RUNS}/{run_id}", headers=bearer(bob))
                stopped = await client.post(f"{first}{RUNS}/{run_id}/cancel", headers=bearer(alice))
            after = await client.get(f"{second}{RUNS}/{run_id}", headers=bearer(alice))
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert (body["run_id"], body["status"], body["session_id"], body["run_input"]) == (
        run_id, "RUNNING", started["session_id"], "where am I running?")
    assert theirs.status_code == 404 and theirs.json()["detail"] == "Run not found."
    assert stopped.status_code == 200
    assert after.status_code == 200 and after.json()["status"] == "CANCELLED"
