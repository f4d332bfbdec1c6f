"""Human in the loop over HTTP: a run that asks its user pauses (TeamRunPaused, usage `paused`), and
POST /teams/{team_id}/runs/{run_id}/continue continues it (owner only, streamed or not, billed to
the same usage row), or refuses it once it expired."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from django.utils import timezone

from chat.models import ChatRun
from chat.runs import reaper
from chat.runs.pause import expire_stale_runs
from metrics.models import Budget, ModelCall, PriceRule, RunUsage
from tests.conftest import adb, bearer, error_body, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def scripted_price(db):
    """The scripted model priced, so every run here has a cost."""
    PriceRule.objects.create(provider="scripted", model_pattern="scripted", input_per_million=Decimal("1250"),
                             output_per_million=Decimal("10000"), effective_from=timezone.now() - timedelta(days=1))

RUNS = "/teams/cirkelline/runs"


def continue_url(run_id: str) -> str:
    return f"{RUNS}/{run_id}/continue"


async def pause(api, user, message: str = "Please ask me what to focus on", **fields):
    response = await api.post(RUNS, data={"message": message, **fields}, headers=bearer(user))
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    assert frames[-1].event == "TeamRunPaused", [f.event for f in frames]
    return frames


def answered(requirements: list[dict], **values) -> list[dict]:
    out = []
    for requirement in requirements:
        requirement = json.loads(json.dumps(requirement))
        if requirement.get("user_input_schema"):
            for field in requirement["user_input_schema"]:
                field["value"] = values.get(field["name"])
        else:
            requirement["confirmation"] = values.get("confirm", True)
        out.append(requirement)
    return out


async def test_a_question_pauses_the_run_with_its_tokens_and_cost_so_far(api, alice):
    frames = await pause(api, alice)
    paused = frames[-1].data
    run_id = paused["run_id"]
    [requirement] = paused["requirements"]
    assert requirement["tool_execution"]["tool_name"] == "get_user_input"
    assert [f["name"] for f in requirement["user_input_schema"]] == ["focus"]

    usage = await adb(RunUsage.objects.get, run_id=run_id)
    assert usage.status == "paused" and usage.total_tokens > 0 and usage.cost is not None and usage.cost > 0
    assert usage.finished_at is not None and usage.model_calls == 1
    run = await adb(ChatRun.objects.get, run_id=run_id)
    assert run.status == "PAUSED" and run.payload["requirements"][0]["id"] == requirement["id"]


async def test_continuing_streams_the_answer_and_bills_the_same_row(api, alice):
    frames = await pause(api, alice)
    paused = frames[-1].data
    run_id, session_id = paused["run_id"], paused["session_id"]
    before = await adb(RunUsage.objects.get, run_id=run_id)
    calls_before = await adb(lambda: list(ModelCall.objects.filter(run_id=run_id).values("calls", "total_tokens")))

    response = await api.post(continue_url(run_id), data={
        "requirements": json.dumps(answered(paused["requirements"], focus="the harbour")),
        "session_id": session_id}, headers=bearer(alice))

    assert response.status_code == 200, response.text
    continued = parse_sse(response.text)
    names = [f.event for f in continued]
    assert names[0] == "TeamRunContinued" and names[-1] == "TeamRunCompleted"
    assert "the harbour" in continued[-1].data["content"]
    # The log goes on numbering where the pause left it.
    assert continued[0].data["event_index"] == paused["event_index"] + 1
    after = await adb(RunUsage.objects.get, run_id=run_id)
    assert after.status == "completed" and after.model_calls == before.model_calls + 1
    assert after.total_tokens > before.total_tokens and after.cost > before.cost
    assert after.started_at == before.started_at and after.duration_ms >= before.duration_ms
    calls = await adb(lambda: list(ModelCall.objects.filter(run_id=run_id).values("calls", "total_tokens", "cost")))
    assert [c["calls"] for c in calls] == [calls_before[0]["calls"] + 1]
    assert calls[0]["total_tokens"] == after.total_tokens
    assert sum((c["cost"] for c in calls), Decimal(0)) == after.cost
    run = await adb(ChatRun.objects.get, run_id=run_id)
    assert run.status == "COMPLETED" and "the harbour" in run.payload["content"]
    # The run is over: continuing again is a 409.
    again = await api.post(continue_url(run_id), data={"requirements": json.dumps(paused["requirements"])},
                           headers=bearer(alice))
    assert again.status_code == 409 and error_body(again)["status"] == "completed"


async def test_a_confirmation_continues_non_streamed_and_a_refusal_is_answered(api, alice):
    frames = await pause(api, alice, "Do a deep research on tidal power")
    paused = frames[-1].data
    assert paused["requirements"][0]["tool_execution"]["tool_name"] == "start_deep_research"
    assert paused["requirements"][0]["tool_execution"]["requires_confirmation"] is True

    response = await api.post(continue_url(paused["run_id"]), json={
        "requirements": [{"id": paused["requirements"][0]["id"], "confirmation": True}], "stream": False},
        headers=bearer(alice))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETED" and "deep research is done" in body["content"]
    usage = await adb(RunUsage.objects.get, run_id=paused["run_id"])
    assert usage.status == "completed" and usage.delegations == 1 and usage.member_runs == 1

    declined = (await pause(api, alice, "Do a deep research on wave power"))[-1].data
    response = await api.post(continue_url(declined["run_id"]), json={
        "requirements": [{"id": declined["requirements"][0]["id"], "confirmation": False}], "stream": False},
        headers=bearer(alice))
    assert response.status_code == 200 and "no deep research" in response.json()["content"]


async def test_another_user_cannot_continue_or_see_the_paused_run(api, alice, bob):
    paused = (await pause(api, alice))[-1].data
    body = {"requirements": json.dumps(answered(paused["requirements"], focus="x"))}

    response = await api.post(continue_url(paused["run_id"]), data=body, headers=bearer(bob))
    assert response.status_code == 404
    assert (await adb(RunUsage.objects.get, run_id=paused["run_id"])).status == "paused"
    wrong_team = await api.post(f"/teams/other/runs/{paused['run_id']}/continue", data=body, headers=bearer(alice))
    assert wrong_team.status_code == 404
    as_bob = await api.post(continue_url(paused["run_id"]), data={**body, "user_id": str(bob.pk)},
                            headers=bearer(alice))
    assert as_bob.status_code == 403
    ok = await api.post(continue_url(paused["run_id"]), data=body, headers=bearer(alice))
    assert ok.status_code == 200 and parse_sse(ok.text)[-1].event == "TeamRunCompleted"


async def test_answers_must_fit_what_was_asked(api, alice):
    paused = (await pause(api, alice))[-1].data
    url = continue_url(paused["run_id"])
    for requirements, status in [("not json", 400), ("[]", 400), (json.dumps([{"id": "made-up"}]), 400),
                                 (json.dumps({"id": paused["requirements"][0]["id"]}), 400)]:
        response = await api.post(url, data={"requirements": requirements}, headers=bearer(alice))
        assert response.status_code == status, (requirements, response.text)
    missing = await api.post(url, data={}, headers=bearer(alice))
    assert missing.status_code == 400
    # A client cannot change the tool or its arguments: only the answer is taken.
    forged = answered(paused["requirements"], focus="boats")
    forged[0]["tool_execution"]["tool_name"] = "delegate_task_to_member"
    forged[0]["tool_execution"]["tool_args"] = {"member_id": "audio-specialist", "task": "leak"}
    response = await api.post(url, data={"requirements": json.dumps(forged)}, headers=bearer(alice))
    assert response.status_code == 200 and "boats" in parse_sse(response.text)[-1].data["content"]
    run = await adb(ChatRun.objects.get, run_id=paused["run_id"])
    assert run.payload["requirements"][0]["tool_execution"]["tool_name"] == "get_user_input"


async def test_an_unanswered_question_pauses_the_run_again(api, alice):
    paused = (await pause(api, alice))[-1].data
    response = await api.post(continue_url(paused["run_id"]), data={
        "requirements": json.dumps([{"id": paused["requirements"][0]["id"]}])}, headers=bearer(alice))
    assert response.status_code == 200
    assert parse_sse(response.text)[-1].event == "TeamRunPaused"
    assert (await adb(RunUsage.objects.get, run_id=paused["run_id"])).status == "paused"


async def test_a_run_paused_too_long_expires(api, alice, settings):
    paused = (await pause(api, alice))[-1].data
    settings.CIRKELLINE_PAUSE_TTL_SECONDS = 60
    await adb(RunUsage.objects.filter(run_id=paused["run_id"]).update,
              finished_at=timezone.now() - timedelta(seconds=61))

    response = await api.post(continue_url(paused["run_id"]), data={
        "requirements": json.dumps(answered(paused["requirements"], focus="x"))}, headers=bearer(alice))
    assert response.status_code == 409
    assert error_body(response)["status"] == "expired" and "expired" in error_body(response)["detail"]
    usage = await adb(RunUsage.objects.get, run_id=paused["run_id"])
    assert usage.status == "expired" and usage.cost > 0
    run = await adb(ChatRun.objects.get, run_id=paused["run_id"])
    assert run.status == "CANCELLED"


@pytest.mark.parametrize("sweeper", ["command", "reaper"])
async def test_the_sweep_expires_only_runs_past_the_ttl(api, alice, settings, sweeper):
    """Guards against paused runs that stay `paused` for ever when nobody comes back to them: the
    reaper every process runs expires them (and so does `manage.py expire_paused_runs`)."""
    old = (await pause(api, alice))[-1].data
    fresh = (await pause(api, alice))[-1].data
    settings.CIRKELLINE_PAUSE_TTL_SECONDS = 60
    await adb(RunUsage.objects.filter(run_id=old["run_id"]).update,
              finished_at=timezone.now() - timedelta(seconds=120))
    if sweeper == "command":
        assert await expire_stale_runs() == 1
    else:
        await reaper.sweep()
    assert (await adb(RunUsage.objects.get, run_id=old["run_id"])).status == "expired"
    assert (await adb(ChatRun.objects.get, run_id=old["run_id"])).status == "CANCELLED"
    assert (await adb(RunUsage.objects.get, run_id=fresh["run_id"])).status == "paused"


async def test_a_paused_run_holds_no_admission_slot(api, alice, settings):
    settings.CIRKELLINE_MAX_RUNS_PER_USER = 1
    first = (await pause(api, alice))[-1].data
    second = await api.post(RUNS, data={"message": "What is 2+2?", "stream": "false"}, headers=bearer(alice))
    assert second.status_code == 200 and second.json()["content"] == "4"
    response = await api.post(continue_url(first["run_id"]), data={
        "requirements": json.dumps(answered(first["requirements"], focus="y"))}, headers=bearer(alice))
    assert response.status_code == 200 and parse_sse(response.text)[-1].event == "TeamRunCompleted"


async def test_a_paused_runs_cost_counts_toward_the_budget_and_usage(api, alice):
    paused = (await pause(api, alice))[-1].data
    usage = await adb(RunUsage.objects.get, run_id=paused["run_id"])
    report = (await api.get("/usage", headers=bearer(alice))).json()
    assert Decimal(str(report["totals"]["cost"])) == usage.cost and report["totals"]["runs"] == 1
    # A limit in cents the paused run's cost reaches (rounded down: the limit has two decimals).
    await adb(Budget.objects.create, user=alice, monthly_limit=usage.cost.quantize(Decimal("0.01"), ROUND_DOWN))

    refused = await api.post(RUNS, data={"message": "What is 2+2?", "stream": "false"}, headers=bearer(alice))
    assert refused.status_code == 402
    refused = await api.post(continue_url(paused["run_id"]), data={
        "requirements": json.dumps(answered(paused["requirements"], focus="z"))}, headers=bearer(alice))
    assert refused.status_code == 402
    assert (await adb(RunUsage.objects.get, run_id=paused["run_id"])).status == "paused"


async def test_cancelling_a_paused_run_ends_it_billed_for_its_first_part(api, alice, bob):
    paused = (await pause(api, alice))[-1].data
    cancel = f"{RUNS}/{paused['run_id']}/cancel"
    assert (await api.post(cancel, headers=bearer(bob))).status_code == 404
    response = await api.post(cancel, headers=bearer(alice))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    usage = await adb(RunUsage.objects.get, run_id=paused["run_id"])
    assert usage.status == "cancelled" and usage.cost > 0
    assert (await adb(ChatRun.objects.get, run_id=paused["run_id"])).status == "CANCELLED"
    refused = await api.post(continue_url(paused["run_id"]), data={
        "requirements": json.dumps(answered(paused["requirements"], focus="x"))}, headers=bearer(alice))
    assert refused.status_code == 409 and error_body(refused)["status"] == "cancelled"
    again = await api.post(cancel, headers=bearer(alice))
    assert again.status_code == 409


async def test_of_two_continues_at_once_exactly_one_runs(api, alice):
    """Guards against a paused run continued twice (two tabs answering at once): both would run the
    model and the second would bill over the first."""
    import asyncio

    paused = (await pause(api, alice))[-1].data
    body = {"requirements": json.dumps(answered(paused["requirements"], focus="once")), "stream": "false"}
    first, second = await asyncio.gather(*(api.post(continue_url(paused["run_id"]), data=body, headers=bearer(alice))
                                           for _ in range(2)))
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    refused = first if first.status_code == 409 else second
    assert error_body(refused)["status"] == "running"
    usage = await adb(RunUsage.objects.get, run_id=paused["run_id"])
    assert usage.status == "completed" and usage.model_calls == 2
