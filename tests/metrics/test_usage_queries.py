"""The QuerySet methods behind GET /usage (usage_totals, usage_by_day, usage_by_model) and the
budget check's one query (Budget.objects.with_spend): exact values on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from metrics.budgets import budget_refusal, budget_status
from metrics.models import Budget, ModelCall, RunUsage
from metrics.reports import pricing_of

from .helpers import ALICE_BY_DAY, ALICE_BY_MODEL, ALICE_TOTALS, _run, seed_usage

pytestmark = pytest.mark.django_db
START, END = date(2026, 11, 30), date(2026, 12, 4)


def as_api(row: dict) -> dict:
    """A QuerySet row with its cost written as the API writes it (and its day as ISO)."""
    out = {**row, "cost": None if row["cost"] is None else f"{row['cost']:.8f}"}
    if "day" in out:
        out["day"] = out["day"].isoformat()
    return out


@pytest.fixture
def seeded(alice, bob):
    seed_usage(alice, bob)


def test_pricing_of_names_how_much_of_a_group_is_priced():
    assert [pricing_of(0, 0, 0), pricing_of(3, 3, 0), pricing_of(3, 0, 3), pricing_of(3, 1, 1), pricing_of(2, 1, 1)] \
        == ["none", "priced", "unpriced", "partial", "partial"]


def test_totals_days_and_models_of_one_user_are_exact(seeded, alice):
    with timezone.override(UTC):
        runs = RunUsage.objects.filter(user=alice).for_period(START, END)
        totals = runs.usage_totals()
        days = runs.usage_by_day(START, END)
        models = ModelCall.objects.of_user(alice.pk).for_period(START, END).usage_by_model()
    assert totals["cost"] == Decimal("0.10000003") and isinstance(totals["cost"], Decimal)
    assert as_api(totals) == ALICE_TOTALS
    assert [as_api(day) for day in days] == ALICE_BY_DAY
    assert [as_api(model) for model in models] == ALICE_BY_MODEL


def test_an_unpriced_group_has_no_cost_and_an_empty_one_costs_zero(seeded, alice):
    """Guards against an unpriced run being reported as free (cost 0 instead of NULL)."""
    with timezone.override(UTC):
        unpriced = RunUsage.objects.filter(run_id="a3").usage_totals()
        empty = RunUsage.objects.filter(user=alice).for_period(date(2026, 12, 2), date(2026, 12, 2)).usage_totals()
        local_only = ModelCall.objects.filter(run_id="a3").usage_by_model()
    assert (unpriced["cost"], unpriced["pricing"], unpriced["unpriced_tokens"]) == (None, "unpriced", 30)
    assert (empty["cost"], empty["pricing"], empty["runs"]) == (Decimal("0"), "none", 0)
    assert [(m["model"], m["cost"], m["pricing"]) for m in local_only] == [("local", None, "unpriced")]


def test_days_are_those_of_the_current_time_zone(seeded, alice):
    """In Copenhagen, alice's 23:30 UTC run of 30 November is on 1 December: GET /usage pins UTC."""
    with timezone.override("Europe/Copenhagen"):
        days = RunUsage.objects.filter(user=alice).usage_by_day(START, END)
    assert [d["runs"] for d in days] == [0, 2, 0, 2, 0]


def test_costs_sum_exactly_where_floats_would_not(alice):
    """Guards against summing costs as binary floats (SQLite stores decimals as REAL)."""
    costs = ["0.10000001", "0.20000002", "1234567.12345678", "0.00000001"]
    for i, cost in enumerate(costs):
        _run(f"x{i}", alice, datetime(2026, 12, 1, 9, i, tzinfo=UTC), cost=cost, pricing="priced",
             calls=[("cirkelline", ("google", "gemini-2.5-pro"), 1, cost, "priced", {})])
    exact = sum(map(Decimal, costs))
    with timezone.override(UTC):
        runs = RunUsage.objects.filter(user=alice)
        assert runs.usage_totals()["cost"] == exact == Decimal("1234567.42345682")
        assert runs.usage_by_day(date(2026, 12, 1), date(2026, 12, 1))[0]["cost"] == exact
        assert ModelCall.objects.of_user(alice.pk).usage_by_model()[0]["cost"] == exact


# -- the budget check: one query, with or without a budget ------------------------------------

NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)


def test_the_budget_check_is_one_query_with_or_without_a_budget(seeded, alice, bob, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert budget_status(bob.pk, NOW) is None
    Budget.objects.create(user=alice, monthly_limit=Decimal("0.10"))
    with django_assert_num_queries(1):
        status = budget_status(alice.pk, NOW)
    # December: a2, a3, a4 (a1 started on 30 November; bob's run is bob's)
    assert (status.limit, status.spent, status.unpriced_runs, status.unpriced_tokens) == (
        Decimal("0.10"), Decimal("0.00000003"), 2, 70)
    assert status.since == datetime(2026, 12, 1, tzinfo=UTC)
    with django_assert_num_queries(1):
        assert budget_refusal(alice.pk, NOW) is None


def test_a_budget_with_no_runs_this_month_reports_zero_spend_and_a_zero_budget_refuses(alice):
    """A zero budget means 'no spending': refused even with nothing spent (spend >= limit)."""
    Budget.objects.create(user=alice, monthly_limit=Decimal("0"))
    status = budget_status(alice.pk, NOW)
    assert (status.spent, status.unpriced_runs, status.unpriced_tokens, status.exhausted) == (Decimal("0"), 0, 0, True)
    assert budget_refusal(alice.pk, NOW).startswith("Your monthly budget of $0.00 is used up: $0.00 spent")


def test_the_spend_of_the_month_ends_at_now_and_starts_on_the_first(alice):
    """Guards against the join's period being dropped (October's or a future row counted)."""
    Budget.objects.create(user=alice, monthly_limit=Decimal("1.00"))
    for run_id, started in [("oct", datetime(2026, 11, 30, 23, 59, tzinfo=UTC)),
                            ("later", datetime(2026, 12, 20, 9, 1, tzinfo=UTC)),
                            ("in", datetime(2026, 12, 1, 0, 0, tzinfo=UTC))]:
        _run(run_id, alice, started, cost="0.50000000", pricing="priced")
    assert budget_status(alice.pk, NOW).spent == Decimal("0.50000000")
