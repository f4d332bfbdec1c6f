"""Runs whose server process died are closed, not lost (chat.runs.reaper, chat.runs.lease).

In one process: the rows a dead worker leaves behind are put on record as its admission wrote
them (the session claim's transaction), with the calls its live ledger had, and an expired lease
(or none). Real worker processes killed mid-run: tests/runs/test_worker_death.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chat.models import ChatRun
from chat.records import running_run_row
from chat.runs import reaper
from chat.runs.worker import worker_id
from chat.storage.buffer import _claim_for_run
from metrics.models import ModelCall, RunUsage, WorkerLease
from metrics.recording import record_run, update_live_ledgers
from tests.conftest import adb, bearer, parse_sse, until
from tests.metrics.helpers import call, rule, usage

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


@pytest.fixture
def no_sweeps(monkeypatch):
    """The in-process app's own reaper kept out (it would close the test's runs before the code under test)."""
    monkeypatch.setattr(reaper, "ensure_reaping", lambda: None)


def previous_incarnation() -> str:
    """This process's worker id as a previous process on this host with this pid had it (a restart)."""
    host, pid, _ = worker_id().rsplit(":", 2)
    return f"{host}:{pid}:0ld0ld00"


def put_on_record(user, run_id: str, *, worker: str, message: str = "Tell me about Copenhagen", streamed=True,
                  started: datetime | None = None, session_id: str | None = None) -> str:
    """A run as its admission put it on record (its own row RUNNING, its usage row running); its session id."""
    started = started or datetime.now(UTC)
    session_id = session_id or f"s-{run_id}"
    _claim_for_run(session_id, user.pk, is_new=True, team_id="cirkelline", name=message[:40], history_runs=5,
                   run_row=running_run_row(run_id=run_id, session_id=session_id, team_id="cirkelline",
                                           team_name="Cirkelline", user_pk=user.pk, message=message,
                                           created_at=started),
                   usage={"run_id": run_id, "user_id": user.pk, "username": user.username, "session_id": session_id,
                          "team_id": "cirkelline", "model": "scripted:scripted", "deep_research": False,
                          "streamed": streamed, "started_at": started, "worker": worker})
    return session_id


def lease(worker: str, seconds_from_now: float) -> None:
    WorkerLease.objects.renew(worker, datetime.now(UTC) + timedelta(seconds=seconds_from_now))


def live_ledger(run_id: str) -> None:
    """Two calls completed before the death: the leader's and a member's (1 M + 2 M input tokens)."""
    ledger = [call(input_tokens=1_000_000, output_tokens=500_000),
              call(agent="research-specialist", calls=1, input_tokens=2_000_000)]
    update_live_ledgers([(run_id, {"input_tokens": 3_000_000, "output_tokens": 500_000, "total_tokens": 3_500_000},
                          2, ledger)])


async def test_a_starting_worker_closes_its_previous_incarnations_runs_and_bills_their_calls(api, alice, bob):
    """Guards against a restart leaving the runs of the process it replaced `running` for ever (no
    reaper, or one that only runs later): their usage rows unbilled, their sessions silent.

    The previous process (same host, same pid, another nonce: a container restarted) left a run
    whose lease has expired, with two completed calls in its live ledger. The first connection
    to this process starts its reaper, which closes that run at once; bob's run on a worker whose
    lease is live, and a run of a worker that never held a lease (an older process mid upgrade,
    still within its deadline), are left alone."""
    await adb(rule)
    dead, alive = previous_incarnation(), "elsewhere:7:a11ve000"
    session = await adb(put_on_record, alice, "r-dead", worker=dead)
    await adb(live_ledger, "r-dead")
    await adb(lease, dead, -1)
    await adb(put_on_record, bob, "r-bobs", worker=alive)
    await adb(lease, alive, 60)
    await adb(put_on_record, bob, "r-unleased", worker="older:8:00000000")
    reaper.stop_reaping()
    try:
        await api.get("/health")  # the first connection: heartbeat and reaper start
        row = await until(lambda: RunUsage.objects.exclude(status="running").filter(run_id="r-dead").first())
    finally:
        reaper.stop_reaping()
    assert row is not None, "the previous incarnation's run was not closed"
    assert (row.status, row.error_type, row.finished_at is not None, row.live_ledger) == (
        "error", "worker_lost", True, None)
    assert (row.input_tokens, row.output_tokens, row.total_tokens, row.model_calls) == (3_000_000, 500_000,
                                                                                        3_500_000, 2)
    assert row.cost == Decimal("4") and row.pricing == "priced"  # 1 + 1 (output at 2/M) + 2
    calls = await adb(lambda: sorted(ModelCall.objects.filter(run_id="r-dead").values_list("agent", "calls")))
    assert calls == [("cirkelline", 1), ("research-specialist", 1)]
    others = await adb(lambda: dict(RunUsage.objects.exclude(run_id="r-dead").values_list("run_id", "status")))
    assert others == {"r-bobs": "running", "r-unleased": "running"}
    # This process holds a lease of its own now.
    assert await adb(lambda: WorkerLease.objects.filter(worker=worker_id(), expires_at__gt=datetime.now(UTC)).exists())

    # The session keeps alice's message, and says the answer was interrupted.
    runs = await api.get(f"/sessions/{session}/runs", headers=bearer(alice))
    assert runs.status_code == 200, runs.text
    [stored] = runs.json()
    assert stored["run_input"] == "Tell me about Copenhagen" and stored["status"] == "ERROR"
    assert stored["content"] == reaper.INTERRUPTED and "interrupted" in stored["content"]


async def test_a_run_is_closed_once_whoever_races_for_it(alice):
    """Guards against two reapers (or a reaper and the run's late owner) each writing a terminal
    row: the close is a conditional UPDATE, and the owner's final write after it adds nothing."""
    await adb(put_on_record, alice, "r-race", worker="gone:1:deadbeef")
    await adb(lease, "gone:1:deadbeef", -5)
    found = await adb(reaper._orphans)
    results = await asyncio.gather(*(reaper.close_orphan(dict(found[0])) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    late = await adb(record_run, usage("r-race", user=alice, started=datetime.now(UTC)), [call(input_tokens=9)])
    row = await adb(RunUsage.objects.get, run_id="r-race")
    assert late is None and (row.status, row.error_type, row.input_tokens) == ("error", "worker_lost", 0)
    assert await reaper.sweep() == []  # nothing left to close


async def test_a_process_never_closes_its_own_runs(alice):
    """Guards against a live process whose own heartbeat is late (a slow database, a busy host)
    closing its own live runs as worker_lost: it is alive by definition."""
    await adb(put_on_record, alice, "r-mine", worker=worker_id())
    await adb(lease, worker_id(), -1)
    assert await reaper.sweep() == []
    assert await reaper.close_if_orphaned("r-mine") is False
    assert (await adb(RunUsage.objects.get, run_id="r-mine")).status == "running"


async def test_cancelling_a_run_whose_worker_died_closes_it_at_once(api, alice, no_sweeps):
    """Guards against a cancel of a dead worker's run answering 503 (no Redis: "in another process")
    or waiting for a process that will never answer, while the run stays `running`."""
    from django.conf import settings

    from chat.runs.admission import coordinator

    await adb(put_on_record, alice, "r-cancel", worker="gone:2:deadbeef")
    await adb(lease, "gone:2:deadbeef", -1)
    if settings.REDIS_URL:  # its slot and owner key, as its admission left them in Redis
        assert await coordinator().admit(user_id=alice.pk, run_id="r-cancel", local_user_runs=0, local_runs=0,
                                         lease=60) is None
        assert await coordinator().owner_elsewhere("r-cancel") == alice.pk
    loop = asyncio.get_running_loop()
    began = loop.time()
    response = await api.post(f"{RUNS}/r-cancel/cancel", headers=bearer(alice))
    took = loop.time() - began
    assert response.status_code == 200, response.text
    assert response.json() == {"run_id": "r-cancel", "status": "error"}
    assert took < 5  # not the 10 s wait for an answer from another process
    row = await adb(RunUsage.objects.get, run_id="r-cancel")
    assert (row.status, row.error_type) == ("error", "worker_lost")
    assert await coordinator().owner_elsewhere("r-cancel") is None  # its slot was given back
    again = await api.post(f"{RUNS}/r-cancel/cancel", headers=bearer(alice))
    assert again.status_code == 409


async def test_a_live_workers_run_is_not_closed_by_a_cancel(api, alice, no_sweeps):
    """The other side: a run whose worker's lease is live is not closed for it; without Redis to
    reach that process the cancel is a 503 as before."""
    await adb(put_on_record, alice, "r-live", worker="alive:3:a11ve000")
    await adb(lease, "alive:3:a11ve000", 60)
    response = await api.post(f"{RUNS}/r-live/cancel", headers=bearer(alice))
    assert response.status_code == 503
    assert (await adb(RunUsage.objects.get, run_id="r-live")).status == "running"


async def test_a_resumed_stream_of_a_lost_run_ends_with_its_terminal_error(api, alice, no_sweeps):
    """Guards against silence (a replay with no events) for a streamed run whose worker died and
    whose event log died with it: the resumed stream gets TeamRunError worker_lost, numbered after
    the last event the client had (its index is one no run reaches: the client's is unknown)."""
    await adb(put_on_record, alice, "r-resume", worker="gone:4:deadbeef")
    await adb(lease, "gone:4:deadbeef", -1)
    assert await adb(reaper._orphans) and await reaper.sweep() == ["r-resume"]
    response = await api.post(f"{RUNS}/r-resume/resume", headers=bearer(alice), data={"last_event_index": "7"})
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    assert [f.event for f in frames] == ["replay", "TeamRunError"]
    assert frames[0].data["status"] == "ERROR"
    error = frames[1].data
    assert (error["error_type"], error["event_index"], error["run_id"]) == ("worker_lost", 1_000_000_000, "r-resume")
    assert error["content"] == reaper.INTERRUPTED
    stored = await adb(lambda: ChatRun.objects.values_list("status", flat=True).get(run_id="r-resume"))
    assert stored == "ERROR"


async def test_a_running_runs_completed_calls_are_on_its_row_before_it_ends(alice, use_latency):
    """Guards against a run's calls reaching its usage row only with its final write (a worker
    killed mid-run would leave calls the provider billed and nobody here did): the live ledger
    holds each call soon after it completed, while the run goes on; the final write replaces it."""
    from chat.runs import RunRequest, start_run

    use_latency(1.0)  # per provider call: the leader's, the member's, the leader's again
    handle = await start_run(RunRequest(user_id=alice.pk, message="Please research the history of Copenhagen"))
    try:
        live = await until(lambda: RunUsage.objects.filter(run_id=handle.run_id, status="running", model_calls__gte=1)
                           .values("live_ledger", "model_calls", "total_tokens").first())
        assert live is not None and not handle.is_finished, "no live ledger while the run was running"
        assert live["model_calls"] >= 1 and live["total_tokens"] > 0
        assert sum(entry["calls"] for entry in live["live_ledger"]) == live["model_calls"]
        assert sum(entry["tokens"]["total_tokens"] for entry in live["live_ledger"]) == live["total_tokens"]
    finally:
        result = await handle.wait()
    assert result.status == "completed"
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    assert row.live_ledger is None and row.model_calls >= 3 and row.total_tokens > live["total_tokens"]


async def test_a_user_refused_for_slots_held_by_a_dead_workers_runs_is_admitted_at_once(api, alice, settings,
                                                                                        no_sweeps):
    """Guards against a user waiting for the next sweep (or, before the reaper, ~180 s) with 429s
    when the runs holding their slots died with their worker: the refused start closes them."""
    from chat.runs.admission import coordinator

    if not settings.REDIS_URL:
        pytest.skip("slots across processes are Redis's")
    settings.CIRKELLINE_MAX_RUNS_PER_USER = 1
    await adb(put_on_record, alice, "r-slot", worker="gone:5:deadbeef")
    await adb(lease, "gone:5:deadbeef", -1)
    assert await coordinator().admit(user_id=alice.pk, run_id="r-slot", local_user_runs=0, local_runs=0,
                                     lease=60) is None  # the slot its admission took, in Redis
    response = await api.post(RUNS, headers=bearer(alice), data={"message": "What is 2+2?", "stream": "false"})
    assert response.status_code == 200, response.text
    row = await adb(RunUsage.objects.get, run_id="r-slot")
    assert (row.status, row.error_type) == ("error", "worker_lost")


async def _stalled_run(api, alice, use_latency, *, close: bool) -> tuple[str, list, dict | None, Any]:
    """alice's streamed delegated run in this process; with `close`, another process's reaper
    closes it (this process's lease ran out: its event loop stalled) after its first provider
    call, while it goes on to its end. (its run id, the frames her stream got, what the close
    wrote, the run's result here)"""
    from chat.runs.handle import live_run

    use_latency(0.5)  # per provider call: the leader's, the member's, the leader's again
    posted = asyncio.ensure_future(api.post(RUNS, headers=bearer(alice), data={
        "message": "Please research the history of Copenhagen", "session_id": "s-stalled", "stream": "true"}))
    live = await until(lambda: RunUsage.objects.filter(session_id="s-stalled", status="running", model_calls__gte=1)
                       .values(*reaper._ORPHAN_FIELDS).first())
    assert live is not None and not posted.done(), "the run ended before it could be closed"
    handle = live_run(live["run_id"])
    assert handle is not None
    closed = None
    if close:
        assert await reaper.close_orphan(live) is True
        closed = await adb(lambda: RunUsage.objects.values().get(run_id=live["run_id"]))
    response = await posted
    assert response.status_code == 200, response.text
    result = await handle.wait()  # her stream ended with the close; the run went on here to its end
    return live["run_id"], parse_sse(response.text), closed, result


async def test_a_run_closed_by_the_reaper_keeps_what_it_was_closed_with_when_its_worker_finishes(
        api, alice, use_latency, no_sweeps, caplog):
    """Guards against a worker that lost its lease while its run went on (its event loop stalled)
    overwriting, with its late final write, what the reaper stored and billed: the session showing
    an answer (and member runs) the API reported as interrupted, the stored run disagreeing with its
    usage row. Its final write stores nothing of the run and says so; its usage row stays as the
    close billed it; its client's stream ends with the close's worker_lost, once."""
    caplog.set_level("WARNING", logger="chat.runs.finalize")
    run_id, frames, closed, result = await _stalled_run(api, alice, use_latency, close=True)

    stored = await adb(lambda: list(ChatRun.objects.filter(session__session_id="s-stalled")
                                    .values_list("run_id", "status", "payload")))
    assert [(r, s, p.get("content"), p.get("closed_by")) for r, s, p in stored] == [
        (run_id, "ERROR", reaper.INTERRUPTED, "reaper")], "the late final write replaced or added to the closed run"
    history = await api.get("/sessions/s-stalled/runs", headers=bearer(alice))
    assert history.status_code == 200, history.text
    assert [(r["run_id"], r["status"], r["content"]) for r in history.json()] == [
        (run_id, "ERROR", reaper.INTERRUPTED)]

    row = await adb(lambda: RunUsage.objects.values().get(run_id=run_id))
    assert row == closed, "the late final write changed the usage row the close wrote"
    assert (row["status"], row["error_type"], row["model_calls"] >= 1) == ("error", "worker_lost", True)
    billed = await adb(lambda: sum(ModelCall.objects.filter(run_id=run_id).values_list("calls", flat=True)))
    assert billed == row["model_calls"]

    lost = [r for r in caplog.records if r.name == "chat.runs.finalize" and run_id in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelname == "WARNING" and "not stored" in lost[0].getMessage()

    # The run ended here as it was closed, and her stream heard that one ending, once.
    assert (result.status, result.error_type, result.message) == ("error", "worker_lost", reaper.INTERRUPTED)
    assert result.terminal.error_type == "worker_lost"
    ends = [f for f in frames if f.event in ("TeamRunCompleted", "TeamRunError", "TeamRunCancelled")]
    assert [(f.event, f.data["error_type"], f.data["content"]) for f in ends] == [
        ("TeamRunError", "worker_lost", reaper.INTERRUPTED)]
    # A later read of the run says the same.
    again = await api.get(f"{RUNS}/{run_id}", headers=bearer(alice))
    assert again.status_code == 200 and (again.json()["status"], again.json()["content"]) == (
        "ERROR", reaper.INTERRUPTED)


async def test_a_late_write_of_a_closed_run_does_not_replace_it(alice):
    """Guards against any write of a run after the reaper closed it (agno persisting the run from a
    background task, a retried final write) replacing the closed row: the run upsert's conflict
    clause leaves a row closed by the reaper as it is; another run in the session is written."""
    from chat.storage.buffer import write_direct

    session = await adb(put_on_record, alice, "r-closed", worker="gone:6:deadbeef")
    await adb(lease, "gone:6:deadbeef", -1)
    assert await reaper.sweep() == ["r-closed"]
    before = await adb(lambda: ChatRun.objects.values("status", "payload").get(run_id="r-closed"))
    late = await adb(lambda: ChatRun.objects.values("run_id", "parent_run_id", "run_type", "component_id",
                                                    "run_index", "created_at").get(run_id="r-closed"))
    rows = [{**late, "status": "COMPLETED", "payload": {**before["payload"], "status": "COMPLETED",
                                                          "content": "Copenhagen was founded ...", "closed_by": None}},
            {**late, "run_id": "r-other", "status": "COMPLETED", "payload": {"run_id": "r-other", "content": "Hi"}}]
    assert await adb(write_direct, None, session, alice.pk, rows, claim=False) is True
    after = dict(await adb(lambda: list(ChatRun.objects.filter(session__session_id=session)
                                        .values_list("run_id", "status"))))
    assert after == {"r-closed": "ERROR", "r-other": "COMPLETED"}
    assert await adb(lambda: ChatRun.objects.values("status", "payload").get(run_id="r-closed")) == before


async def test_a_run_nobody_closed_stores_its_answer(api, alice, use_latency, no_sweeps):
    """The other side: the same run, not closed, is stored with its answer and billed by its worker."""
    run_id, frames, _, result = await _stalled_run(api, alice, use_latency, close=False)
    assert result.status == "completed"
    assert frames[-1].event == "TeamRunCompleted"
    stored = await adb(lambda: ChatRun.objects.values("status", "payload").get(run_id=run_id))
    assert stored["status"] == "COMPLETED" and stored["payload"]["content"] == frames[-1].data["content"]
    assert "closed_by" not in stored["payload"]
    assert await adb(lambda: ChatRun.objects.filter(parent_run_id=run_id).exists())  # its member's run
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert (row.status, row.error_type, row.model_calls) == ("completed", "", 3)
