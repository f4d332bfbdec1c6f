"""What a run costs, end to end: the run service prices its ledger in the final write.

The scripted model reports its token usage call by call and keeps it on the call record
(`ScriptedCall.usage`), so each expected cost here is computed from what the "provider" reported,
independently of the run service's accounting: sum over calls of tokens x the rule's price.
The prices (1.25 and 10 USD per million) make every cost exact in 8 decimals, so the figures
compare with `==`, not approximately.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from chat.agents.demo import demo_script
from chat.agents.scripted import provider_error
from chat.runs import RunRequest, start_run
from metrics.models import ModelCall, PriceRule, Pricing, RunStatus, RunUsage
from tests.conftest import adb, bearer

pytestmark = pytest.mark.django_db(transaction=True)

INPUT, OUTPUT = Decimal("1.25"), Decimal("10")
MILLION = Decimal(1_000_000)
DELEGATING = "Please research the history of Copenhagen"


@pytest.fixture
def price_rule(db):
    return PriceRule.objects.create(
        provider="scripted", model_pattern="scripted", input_per_million=INPUT, output_per_million=OUTPUT,
        effective_from=timezone.now() - timedelta(days=1))


def reported_cost(calls, input_price=INPUT, output_price=OUTPUT) -> Decimal:
    """What the calls cost by the tokens the provider reported for each (failed attempts: none)."""
    return sum(((Decimal(c.usage.input_tokens) * input_price + Decimal(c.usage.output_tokens) * output_price)
                / MILLION for c in calls if c.usage is not None), Decimal(0))


def usage_row(run_id) -> RunUsage:
    return RunUsage.objects.get(run_id=run_id)


def ledger(run_id) -> list[ModelCall]:
    return list(ModelCall.objects.filter(run_id=run_id).order_by("agent"))


async def _finish(handle):
    events = [event async for event in handle.events()]
    return events, await handle.wait()


@pytest.mark.parametrize("stream", ["true", "false"])
async def test_a_delegated_run_costs_leader_plus_member_tokens_times_price(api, alice, recorder, price_rule, stream):
    """Guards against member calls left out of the bill (agno's team metrics count the leader only),
    and against a non-streamed run priced differently from a streamed one."""
    response = await api.post("/teams/cirkelline/runs", data={"message": DELEGATING, "stream": stream},
                              headers=bearer(alice))
    assert response.status_code == 200
    row = await adb(lambda: RunUsage.objects.get(user=alice))
    calls = recorder.for_run(row.run_id)
    assert {c.model_label for c in calls} == {"leader", "research-specialist"}

    assert row.pricing == Pricing.PRICED
    assert row.cost == reported_cost(calls) > 0
    assert row.unpriced_tokens == 0
    rows = await adb(ledger, row.run_id)
    assert [(r.agent, r.is_leader) for r in rows] == [("cirkelline", True), ("research-specialist", False)]
    assert sum(r.cost for r in rows) == row.cost
    member = [c for c in calls if c.model_label == "research-specialist"]
    assert rows[1].cost == reported_cost(member)
    assert rows[1].input_tokens == sum(c.usage.input_tokens for c in member)
    assert sum(r.total_tokens for r in rows) == row.total_tokens
    assert rows[0].price_snapshot["per_million"]["input"] == "1.250000"


async def _run_until_first_call_completes(alice, recorder):
    """Start a delegated run and return its handle once its first model call has reported usage."""
    handle = await start_run(RunRequest(user_id=alice.pk, message=DELEGATING))
    seen = []
    async for event in handle.events():
        seen.append(event.event)
        if event.event == "TeamModelRequestCompleted":
            return handle
    raise AssertionError(f"the run ended before its first call completed: {seen}")


@pytest.mark.parametrize("reason", [RunStatus.CANCELLED, RunStatus.TIMED_OUT])
async def test_a_run_stopped_early_is_billed_for_the_tokens_it_consumed(alice, recorder, price_rule, use_latency,
                                                                       reason):
    """Guards against cancelled and timed-out runs priced at zero (or not at all).

    `abort(timed_out)` is exactly what the run's deadline timer calls (chat.runs.service).
    """
    use_latency(0.2)
    handle = await _run_until_first_call_completes(alice, recorder)
    assert handle.abort(reason)
    _, result = await _finish(handle)
    assert result.status == reason

    row = await adb(usage_row, handle.run_id)
    calls = recorder.for_run(handle.run_id)
    assert row.status == reason
    assert row.cost == reported_cost(calls) > 0
    assert row.pricing == Pricing.PRICED
    assert sum(r.cost for r in await adb(ledger, handle.run_id)) == row.cost


@pytest.mark.parametrize("when", ["before", "mid-stream"])
async def test_a_retried_call_is_billed_for_what_each_attempt_reported(alice, recorder, failures, settings,
                                                                      price_rule, when):
    """Guards against billing a refused attempt, dropping the retry's tokens, or (mid-stream) billing
    only the attempt that answered."""
    settings.CIRKELLINE_RETRY_DELAY = 0.01
    failures.push(provider_error(503), label="leader", when=when)
    handle = await start_run(RunRequest(user_id=alice.pk, message="Hello there"))
    _, result = await _finish(handle)
    assert result.status == RunStatus.COMPLETED

    calls = recorder.for_run(handle.run_id)
    assert len(calls) == 2 and calls[0].usage is None and calls[1].usage is not None
    row = await adb(usage_row, handle.run_id)
    assert row.retries == 1
    [call] = await adb(ledger, handle.run_id)
    if when == "before":  # refused outright: the provider consumed nothing
        assert row.cost == reported_cost(calls) == reported_cost(calls[1:])
        assert row.input_tokens == calls[1].usage.input_tokens
        assert (row.model_calls, row.estimated_tokens, call.estimated) == (1, 0, False)
    else:  # it had begun answering: its prompt and partial answer are billed too, counted locally
        assert row.cost > reported_cost(calls[1:])
        assert row.input_tokens > calls[1].usage.input_tokens
        assert (row.model_calls, call.calls, call.estimated) == (2, 2, True)
        assert row.total_tokens - row.estimated_tokens == calls[1].usage.total_tokens


async def test_a_model_without_a_price_is_unpriced_never_free(alice, recorder):
    """Guards against a missing price rule turning into a cost of 0 (a bill people would trust wrongly)."""
    handle = await start_run(RunRequest(user_id=alice.pk, message=DELEGATING))
    await _finish(handle)
    row = await adb(usage_row, handle.run_id)
    assert row.cost is None and row.pricing == Pricing.UNPRICED
    assert row.unpriced_tokens == row.total_tokens > 0
    rows = await adb(ledger, handle.run_id)
    assert rows and all(r.cost is None and r.pricing == Pricing.UNPRICED for r in rows)
    gap = await adb(lambda: list(ModelCall.objects.coverage_gap()))
    assert [(g["provider"], g["model"]) for g in gap] == [("Scripted", "scripted")]
    assert gap[0]["tokens"] == row.total_tokens


async def test_changing_a_price_leaves_billed_runs_as_they_were(alice, recorder, price_rule):
    """Guards against re-pricing history: old rows keep their cost, new runs use the new rule."""
    first = await start_run(RunRequest(user_id=alice.pk, message=DELEGATING))
    await _finish(first)
    before = await adb(usage_row, first.run_id)

    new_rule = await adb(price_rule.replace, input_per_million=Decimal("2.5"))
    second = await start_run(RunRequest(user_id=alice.pk, message=DELEGATING))
    await _finish(second)

    assert await adb(lambda: PriceRule.objects.count()) == 2
    again = await adb(usage_row, first.run_id)
    assert again.cost == before.cost == reported_cost(recorder.for_run(first.run_id))
    after = await adb(usage_row, second.run_id)
    assert after.cost == reported_cost(recorder.for_run(second.run_id), input_price=Decimal("2.5"))
    assert {r.price_rule_id for r in await adb(ledger, second.run_id)} == {new_rule.pk}
    assert {r.price_rule_id for r in await adb(ledger, first.run_id)} == {price_rule.pk}


async def test_a_cost_the_provider_reports_is_kept_beside_ours(alice, recorder, price_rule, use_script):
    """Guards against dropping the provider's own figure, the one thing to reconcile our price against."""
    use_script(lambda call: dataclasses.replace(demo_script(call), cost=0.000125))
    handle = await start_run(RunRequest(user_id=alice.pk, message=DELEGATING))
    await _finish(handle)
    rows = await adb(ledger, handle.run_id)
    calls = recorder.for_run(handle.run_id)
    by_agent = {r.agent: r for r in rows}
    leader_calls = sum(1 for c in calls if c.model_label == "leader")
    assert by_agent["cirkelline"].provider_reported_cost == Decimal("0.000125") * leader_calls
    assert by_agent["research-specialist"].provider_reported_cost == Decimal("0.000125")
    assert by_agent["cirkelline"].cost == reported_cost([c for c in calls if c.model_label == "leader"])


async def test_the_run_line_and_metrics_carry_the_cost(alice, recorder, price_rule, caplog):
    """Guards against an operator's run line without the cost the usage row has."""
    caplog.set_level("INFO", logger="cirkelline.run")
    handle = await start_run(RunRequest(user_id=alice.pk, message=DELEGATING))
    await _finish(handle)
    row = await adb(usage_row, handle.run_id)
    lines = [r for r in caplog.records if r.name == "cirkelline.run" and r.run_id == handle.run_id]
    assert len(lines) == 1
    assert Decimal(str(lines[0].cost_usd)) == row.cost
    assert handle.cost == row.cost
