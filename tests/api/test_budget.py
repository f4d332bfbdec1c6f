"""Monthly budgets on the run path: a user whose month's spend is at or over their budget is
refused (HTTP 402; the websocket in tests/ws/testbudget.py) before anything runs or is written."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.errors import AdmissionRefused, BudgetExceeded
from chat.runs import RunRequest, live_run, service, start_run
from chat.storage import buffer, executor
from metrics.budgets import month_start
from tests import budgets
from tests.budgets import budget, nothing_written_but, spent
from tests.conftest import adb, bearer, error_body, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)
admissions = budgets.admissions  # the fixture

RUNS = "/teams/cirkelline/runs"


@pytest.mark.parametrize("stream", ["true", "false"])
async def test_a_used_up_budget_is_a_402_before_anything_runs(api, alice, admissions, recorder, stream):
    await adb(budget, alice, "5.00")
    await adb(spent, alice, "5.00000000")  # at the limit: used up
    response = await api.post(RUNS, data={"message": "hi", "stream": stream}, headers=bearer(alice))
    assert response.status_code == 402, response.text
    detail = error_body(response)["detail"]
    assert detail.startswith("Your monthly budget of $5.00 is used up: $5.00 spent since 01 ")
    assert admissions["admitted"] == admissions["released"] == [alice.pk] and recorder.calls == []
    await nothing_written_but(alice)


async def test_under_the_limit_the_run_goes_ahead_and_other_users_are_not_affected(api, alice, bob):
    await adb(budget, alice, "5.00")
    await adb(spent, alice, "4.99999999")
    response = await api.post(RUNS, data={"message": "hi"}, headers=bearer(alice))
    assert response.status_code == 200 and parse_sse(response.text)[-1].event == "TeamRunCompleted"

    await adb(budget, bob, "1.00")
    await adb(spent, alice, "100.00000000", run_id="alice-big")  # alice's spend is not bob's
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(bob))
    assert response.status_code == 200


async def test_last_months_spend_does_not_count(api, alice):
    await adb(budget, alice, "1.00")
    await adb(spent, alice, "50.00000000", started=month_start(timezone.now()) - timedelta(seconds=1))
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 200, response.text


async def test_a_run_in_flight_finishes_when_thebudget_runs_out_meanwhile(api, alice, use_latency):
    """The check is at the start only: a run already going is never cut off by it."""
    await adb(budget, alice, "1.00")
    use_latency(0.5)  # each model call waits 0.5 s: the run is still going when the spend is written
    handle = await start_run(RunRequest(user_id=alice.pk, message="hi"))
    await adb(spent, alice, "2.00000000")
    assert live_run(handle.run_id) is handle  # the precondition: the spend was written mid-run
    assert (await handle.wait()).status == "completed"
    refused = await api.post(RUNS, data={"message": "again", "stream": "false"}, headers=bearer(alice))
    assert refused.status_code == 402


async def test_no_more_than_the_per_user_run_cap_of_runs_goes_past_the_budget(alice, settings, use_latency,
                                                                               monkeypatch):
    """The worst case of spend past the budget is bounded by CIRKELLINE_MAX_RUNS_PER_USER runs (their
    cost is unknown until they end). Guards against a start whose budget check passed while another
    run went on, admitted once that run had ended over the budget: with a cap of 1, a second run
    past the limit. The check comes after admission, so it sees every run that holds no slot."""
    settings.CIRKELLINE_MAX_RUNS_PER_USER = 1
    await adb(budget, alice, "1.00")
    await adb(spent, alice, "0.50000000")
    use_latency(0.3)
    first = await start_run(RunRequest(user_id=alice.pk, message="hi"))

    checked, go_on = asyncio.Event(), asyncio.Event()
    run_db = buffer.run_db

    async def budget_check_then_wait(fn, *args, **kwargs):
        result = await run_db(fn, *args, **kwargs)
        # The budget is checked first in the claim's hand-off (its precheck); checked while the
        # first run goes on: hold the start here.
        if kwargs.get("precheck") is not None:
            checked.set()
            await go_on.wait()
        return result

    monkeypatch.setattr(buffer, "run_db", budget_check_then_wait)
    second = asyncio.create_task(start_run(RunRequest(user_id=alice.pk, message="again")))
    waiting = asyncio.create_task(checked.wait())
    await asyncio.wait([second, waiting], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    assert (await first.wait()).status == "completed"
    await adb(spent, alice, "2.00000000", run_id="first-runs-cost")  # the first run took alice over
    go_on.set()
    with pytest.raises((AdmissionRefused, BudgetExceeded)):
        handle = await second
        await handle.wait()  # (before: it ran, a second run past the budget with a cap of 1)


async def test_admitting_a_run_is_one_hand_off_to_the_database_thread(alice, monkeypatch):
    """The budget check rides in the session claim's hand-off (both sync, in one call); over
    budget, that call writes nothing (test_a_used_up_budget_is_a_402_before_anything_runs)."""
    await adb(budget, alice, "5.00")
    calls = []
    real = executor.run_db

    async def counting(fn, *args, **kwargs):
        calls.append(fn.__name__)
        return await real(fn, *args, **kwargs)

    for module in (buffer, service):
        if hasattr(module, "run_db"):
            monkeypatch.setattr(module, "run_db", counting)
    handle = await start_run(RunRequest(user_id=alice.pk, message="hi"))
    assert calls == ["_claim_for_run"]
    assert (await handle.wait()).status == "completed"
