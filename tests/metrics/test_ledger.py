"""record_run: the usage row, its per agent x model ledger and its cost, written once per run."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from metrics.models import DelegationFailure, ModelCall, RunUsage
from metrics.recording import record_run, record_run_usage

from .helpers import T0, call, rule, usage

pytestmark = pytest.mark.django_db


def _delegated_run():
    leader = call("cirkelline", input_tokens=1_200, output_tokens=80, calls=2)
    member = call("research-specialist", input_tokens=300, output_tokens=500, calls=1)
    return leader, member


def test_a_delegated_run_costs_leader_plus_member_tokens_times_price_exactly(alice):
    """Guards against billing the leader only (agno's team metrics): the member's calls count too."""
    rule("scripted", "scripted", "1.10", "4.40")
    leader, member = _delegated_run()
    record_run(usage(user=alice, input_tokens=1_500, output_tokens=580, total_tokens=2_080), [leader, member])
    run = RunUsage.objects.get()
    rows = {r.agent: r for r in ModelCall.objects.all()}
    assert rows["cirkelline"].cost == Decimal("0.00167200")  # 1200 x 1.10 + 80 x 4.40
    assert rows["research-specialist"].cost == Decimal("0.00253000")  # 300 x 1.10 + 500 x 4.40
    assert rows["cirkelline"].is_leader and not rows["research-specialist"].is_leader
    assert run.cost == Decimal("0.00420200") == rows["cirkelline"].cost + rows["research-specialist"].cost
    assert (run.pricing, run.unpriced_tokens) == ("priced", 0)
    assert rows["cirkelline"].price_snapshot["per_million"]["input"] == "1.100000"
    assert rows["cirkelline"].calls == 2


def test_recording_a_run_twice_never_double_counts(alice):
    """A retried flush: guards against a second ledger or changed totals."""
    rule()
    leader, member = _delegated_run()
    record_run(usage(user=alice, total_tokens=2_080), [leader, member], [{"kind": "member_error",
                                                                          "member": "research-specialist"}])
    record_run(usage(user=alice, total_tokens=9_999), [leader, member, call("x", input_tokens=5)],
               [{"kind": "member_error", "member": "research-specialist"}])
    assert RunUsage.objects.get().total_tokens == 2_080
    assert ModelCall.objects.count() == 2
    assert DelegationFailure.objects.count() == 1


def test_an_unknown_model_is_unpriced_with_null_cost_and_counted_as_a_coverage_gap(alice):
    """Guards against pricing an unknown model at zero (a run that cost money shown as free)."""
    record_run(usage(user=alice, model="openai-like:local"), [call("cirkelline", "local-llm", "openai-like",
                                                                   input_tokens=700, output_tokens=50)])
    run, row = RunUsage.objects.get(), ModelCall.objects.get()
    assert (row.cost, row.pricing, row.price_snapshot) == (None, "unpriced", None)
    assert (run.cost, run.pricing, run.unpriced_tokens) == (None, "unpriced", 750)


def test_a_run_with_one_priced_and_one_unpriced_model_is_partial(alice):
    rule()
    record_run(usage(user=alice), [call("cirkelline", input_tokens=1_000_000),
                                   call("research-specialist", "mystery", "Nowhere", input_tokens=10, output_tokens=2)])
    run = RunUsage.objects.get()
    assert (run.cost, run.pricing, run.unpriced_tokens) == (Decimal("1.00000000"), "partial", 12)


def test_a_run_that_made_no_model_call_costs_exactly_zero(alice):
    record_run(usage(user=alice, status="cancelled"), [])
    assert (RunUsage.objects.get().cost, RunUsage.objects.get().pricing) == (Decimal("0"), "priced")


def test_changing_a_price_leaves_old_rows_unchanged_and_prices_new_runs_with_the_new_rule(alice):
    """Guards against re-pricing history: a billed row keeps its cost and snapshot."""
    old = rule(start=T0 - timedelta(days=10))
    record_run(usage("before", user=alice, started=T0 - timedelta(hours=1)), [call(input_tokens=1_000_000)])
    old.replace(at=T0, input_per_million=Decimal("3.00"))
    # A run that started before the change but is written after it still uses the old price.
    record_run(usage("late-write", user=alice, started=T0 - timedelta(minutes=1)), [call(input_tokens=1_000_000)])
    record_run(usage("after", user=alice, started=T0 + timedelta(minutes=1)), [call(input_tokens=1_000_000)])
    costs = dict(RunUsage.objects.values_list("run_id", "cost"))
    assert costs == {"before": Decimal("1.00000000"), "late-write": Decimal("1.00000000"),
                     "after": Decimal("3.00000000")}
    snapshots = {r.run_id: r.price_snapshot["per_million"]["input"] for r in ModelCall.objects.all()}
    assert snapshots == {"before": "1.000000", "late-write": "1.000000", "after": "3.000000"}


def test_cancelled_and_timed_out_runs_are_billed_for_the_calls_they_made(alice):
    rule()
    record_run(usage("c", user=alice, status="cancelled"), [call(input_tokens=500_000)])
    record_run(usage("t", user=alice, status="timed_out"), [call(input_tokens=250_000)])
    assert dict(RunUsage.objects.values_list("status", "cost")) == {
        "cancelled": Decimal("0.50000000"), "timed_out": Decimal("0.25000000")}


def test_a_provider_reported_cost_is_kept_beside_ours(alice):
    rule()
    entry = {**call(input_tokens=1_000), "provider_cost": 0.0012}
    record_run(usage(user=alice), [entry])
    row = ModelCall.objects.get()
    assert (row.cost, row.provider_reported_cost) == (Decimal("0.00100000"), Decimal("0.00120000"))


def test_derived_fields_are_computed_never_taken_from_the_caller(alice):
    with pytest.raises(ValueError, match="unknown RunUsage fields"):
        record_run(usage(user=alice, cost=Decimal("0")), [])


def test_the_legacy_writer_without_a_ledger_marks_the_run_unpriced(alice):
    record_run_usage(usage(user=alice, total_tokens=40))
    run = RunUsage.objects.get()
    assert (run.cost, run.pricing, run.unpriced_tokens) == (None, "unpriced", 40)


def test_delegation_failures_are_recorded_with_the_runs_identity(alice):
    record_run(usage(user=alice, model="google:gemini-2.5-flash"), [],
               [{"kind": "announced_not_executed", "member": "research-specialist", "excerpt": "I'll ask..."}])
    failure = DelegationFailure.objects.get()
    assert (failure.run_id, failure.session_id, failure.user, failure.model, failure.kind) == (
        "run-1", "s-1", alice, "google:gemini-2.5-flash", "announced_not_executed")
    with pytest.raises(ValueError):
        record_run(usage("run-2", user=alice), [], [{"kind": "made_up"}])
