"""The delegation-failure detector in live runs (chat.runs.monitor): a stalled member recorded and
announced while the run goes on, the end-of-run kinds recorded with the run, over SSE and websocket."""

from __future__ import annotations

import re

import pytest
from django.db import OperationalError
from django.test import Client
from django.urls import reverse

from chat.agents import providers
from chat.agents.scripted import Turn, provider_error
from chat.runs import RunRequest, cancel_run, start_run
from metrics.models import DelegationFailure, RunUsage
from tests.conftest import adb, bearer, parse_sse
from tests.observability import conftest as observability
from tests.ws import conftest as ws_conftest

pytestmark = pytest.mark.django_db(transaction=True)
# Fixtures of other test packages: in-process websockets, /metrics read with prometheus-client's parser.
connect, scrape, metrics_token = ws_conftest.connect, observability.scrape, observability.metrics_token

RESEARCH = "Please research the history of Copenhagen"
DETECTED = "DelegationFailureDetected"
TERMINAL = {"TeamRunCompleted", "TeamRunError", "TeamRunCancelled"}
# Every scripted provider call takes LATENCY; a member silent for STALL is stalled. The run makes
# three calls (leader, member, leader): the member stalls STALL into its call and answers
# LATENCY - STALL later, so a finding comes with the run still live for over a second.
LATENCY, STALL = 1.5, 0.3


@pytest.fixture
def stalling(settings, use_latency):
    settings.CIRKELLINE_MEMBER_STALL_SECONDS = STALL
    use_latency(LATENCY)


def failures_of(run_id: str) -> list[DelegationFailure]:
    return list(DelegationFailure.objects.filter(run_id=run_id).order_by("id"))


def usage_rows(run_id: str) -> list[RunUsage]:
    return list(RunUsage.objects.filter(run_id=run_id))


async def test_a_stalled_member_is_recorded_and_announced_while_the_run_goes_on_to_complete(alice, stalling, caplog):
    """Guards against the stall being found only after the run (or not at all), and against the
    finding ending the run or being recorded twice by the final write."""
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    before = []
    async for event in handle.events():
        before.append(event)
        if event.event == DETECTED:
            break
    detected = before[-1]
    assert detected.event == DETECTED, [e.event for e in before]
    assert (detected.kind, detected.member, detected.run_id, detected.session_id) == (
        "member_stalled", "research-specialist", handle.run_id, handle.session_id)
    assert "research-specialist" in detected.excerpt and "limit 0.3 s" in detected.excerpt
    await handle.monitor.written()
    rows = await adb(failures_of, handle.run_id)
    assert not handle.is_finished  # recorded while the run is live
    assert [(r.kind, r.member, r.user_id, r.session_id, r.model) for r in rows] == [
        ("member_stalled", "research-specialist", alice.pk, handle.session_id, "scripted")]
    assert [u.status for u in await adb(usage_rows, handle.run_id)] == ["running"]  # not ended yet

    rest = [event async for event in handle.events()]
    result = await handle.wait()
    assert result.status == "completed" and rest[-1].event == "TeamRunCompleted"
    assert "RunCompleted" in [e.event for e in rest]  # the member did answer, later
    assert DETECTED not in [e.event for e in rest]  # announced once
    usage = await adb(usage_rows, handle.run_id)
    assert len(usage) == 1 and usage[0].status == "completed" and usage[0].member_runs == 1
    assert [(r.kind, r.member) for r in await adb(failures_of, handle.run_id)] == [
        ("member_stalled", "research-specialist")]
    [line] = [r for r in caplog.records if r.getMessage() == "delegation failure"]
    assert (line.name, line.levelname, line.kind, line.member, line.live, line.run_id) == (
        "cirkelline.run", "WARNING", "member_stalled", "research-specialist", True, handle.run_id)
    assert not hasattr(line, "excerpt") and line.excerpt_chars == len(detected.excerpt)  # content-gated


async def test_a_stalled_member_is_recorded_and_the_run_still_ends_at_its_deadline(alice, settings, stalling):
    settings.CIRKELLINE_RUN_TIMEOUT = 2.6 * LATENCY  # the member answers at 2 x LATENCY, the leader would at 3 x
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    events = [event async for event in handle.events()]
    result = await handle.wait()
    assert result.status == "timed_out" and events[-1].event == "TeamRunError"
    names = [e.event for e in events]
    assert names.count(DETECTED) == 1 and names.index(DETECTED) < names.index("RunCompleted")
    usage = await adb(usage_rows, handle.run_id)
    assert len(usage) == 1 and usage[0].status == "timed_out"
    assert [(r.kind, r.member) for r in await adb(failures_of, handle.run_id)] == [
        ("member_stalled", "research-specialist")]


def staff_pages(run_id: str) -> tuple[str, list[str], str]:
    """As staff: the delegation report, the run list its link opens, and the team run's page."""
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("staff", password="staff-password-1"))
    report = client.get(reverse("admin:metrics_delegationfailure_report")).content.decode()
    link = re.search(rf'<a href="([^"]+)" class="run-link">{run_id}</a>', report).group(1)
    listed = client.get(link).context["cl"].result_list
    team_run = next(run for run in listed if run.run_id == run_id)
    page = client.get(reverse("admin:chat_chatrun_change", args=[team_run.pk]))
    return report, [run.run_id for run in listed], page.content.decode()


async def test_the_delegation_report_drills_down_to_the_stored_run_and_its_member_run(alice, stalling):
    """Guards against a report link that opens nothing, or the team run without the member run
    the failure is about."""
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    events = [event async for event in handle.events()]
    member_run = next(e.run_id for e in events if e.event == "RunStarted")
    report, runs, page = await adb(staff_pages, handle.run_id)
    assert "member_stalled" in report
    assert sorted(runs) == sorted([handle.run_id, member_run])
    assert "delegate_task_to_member" in page and "research-specialist" in page


async def test_cancelling_the_run_does_not_stop_the_live_write(alice, stalling):
    """Guards against the live write being one of the run's tasks (abort cancels those)."""
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    async for event in handle.events():
        if event.event == DETECTED:
            assert await cancel_run(alice.pk, handle.run_id) == "cancelled"
            break
    await handle.monitor.written()
    assert not any(task.cancelled() for task in handle.monitor._writes)
    assert [(r.kind, r.member) for r in await adb(failures_of, handle.run_id)] == [
        ("member_stalled", "research-specialist")]
    assert [r.status for r in await adb(usage_rows, handle.run_id)] == ["cancelled"]


async def test_a_database_outage_during_the_live_write_leaves_the_finding_to_the_final_write(
        alice, stalling, monkeypatch, caplog):
    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("chat.runs.monitor.record_delegation_failures", down)
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    async for event in handle.events():
        if event.event == DETECTED:
            await handle.monitor.written()
            assert await adb(failures_of, handle.run_id) == []  # the live write failed ...
    assert (await handle.wait()).status == "completed"  # ... the run did not
    assert [(r.kind, r.member) for r in await adb(failures_of, handle.run_id)] == [
        ("member_stalled", "research-specialist")]
    assert "its final write will" in caplog.text


async def test_the_sse_stream_carries_the_event_and_metrics_count_it(api, alice, stalling, scrape):
    counted = "cirkelline_delegation_failures_total"
    before = observability.value(await scrape(), counted, kind="member_stalled")
    response = await api.post("/teams/cirkelline/runs", data={"message": RESEARCH}, headers=bearer(alice))
    frames = parse_sse(response.text)
    names = [f.event for f in frames]
    assert names.count(DETECTED) == 1 and names[-1] == "TeamRunCompleted"
    detected = frames[names.index(DETECTED)].data
    run_id = frames[-1].data["run_id"]
    assert set(detected) == {"event", "run_id", "session_id", "team_id", "kind", "member", "excerpt", "created_at",
                             "event_index"}
    assert (detected["run_id"], detected["team_id"], detected["kind"], detected["member"]) == (
        run_id, "cirkelline", "member_stalled", "research-specialist")
    assert isinstance(detected["created_at"], int)
    # announced while the member was still working: before its answer
    assert names.index(DETECTED) < names.index("RunCompleted")
    assert len(await adb(usage_rows, run_id)) == 1
    assert observability.value(await scrape(), counted, kind="member_stalled") == before + 1


async def test_a_websocket_run_carries_the_event(connect, alice, stalling):
    socket = await connect(alice)
    run_id, session_id = await socket.run(RESEARCH)
    finished = await socket.finish(run_id)
    events = socket.events(run_id)
    detected = [e for e in events if e["event"] == DETECTED]
    assert len(detected) == 1
    assert (detected[0]["kind"], detected[0]["member"], detected[0]["session_id"]) == (
        "member_stalled", "research-specialist", session_id)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)) and all(e["seq"] == e["event_index"] for e in events)
    assert finished["status"] == "completed" and events[-1]["event"] == "TeamRunCompleted"
    assert len(await adb(usage_rows, run_id)) == 1


async def run_to_end(user, message: str):
    handle = await start_run(RunRequest(user_id=user.pk, message=message))
    events = [event async for event in handle.events()]
    return handle, events, await handle.wait()


async def test_a_normal_delegated_run_records_no_failure(alice, settings):
    settings.CIRKELLINE_MEMBER_STALL_SECONDS = 30.0
    handle, events, result = await run_to_end(alice, RESEARCH)
    assert result.status == "completed" and "RunStarted" in [e.event for e in events]
    assert DETECTED not in [e.event for e in events]
    assert await adb(failures_of, handle.run_id) == []
    assert handle.monitor.failures() == []


def announcing_leader(call):
    """A leader that says it will delegate and never calls the tool; members as in the demo."""
    if call.is_leader:
        return Turn(text="Good question! I'll ask the research specialist to look into Copenhagen's history.")
    return Turn(text="unused")


async def test_an_announcement_without_a_delegation_is_recorded_with_the_run(alice, monkeypatch):
    monkeypatch.setattr(providers, "demo_script", announcing_leader)
    handle, events, result = await run_to_end(alice, RESEARCH)
    assert result.status == "completed"
    names = [e.event for e in events]
    assert "TeamToolCallStarted" not in names
    # announced before the terminal event, once the run's rows are being written
    assert names[-2:] == [DETECTED, "TeamRunCompleted"]
    assert (events[-2].kind, events[-2].member) == ("announced_not_executed", "research-specialist")
    rows = await adb(failures_of, handle.run_id)
    assert [(r.kind, r.member, r.user_id, r.session_id, r.model) for r in rows] == [
        ("announced_not_executed", "research-specialist", alice.pk, handle.session_id, "scripted")]
    assert "I'll ask the research specialist" in rows[0].excerpt
    usage = await adb(usage_rows, handle.run_id)
    assert len(usage) == 1 and usage[0].delegations == 0


async def test_a_member_error_is_recorded_with_the_run(alice, settings, failures):
    settings.CIRKELLINE_MAX_RETRIES = 0
    failures.push(provider_error(400), label="research-specialist")
    handle, events, result = await run_to_end(alice, RESEARCH)
    assert "RunError" in [e.event for e in events]
    rows = await adb(failures_of, handle.run_id)
    assert [(r.kind, r.member, r.user_id) for r in rows] == [("member_error", "research-specialist", alice.pk)]
    assert [e.kind for e in events if e.event == DETECTED] == ["member_error"]
    assert [e.event for e in events if e.event in TERMINAL] == [events[-1].event]
