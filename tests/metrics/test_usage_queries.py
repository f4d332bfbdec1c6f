"""The QuerySet methods behind GET /usage (usage_totals, usage_by_day, usage_by_model) and the
budget check's one query (Budget.objects.with_spend, a prepared statement, against its ORM
reference with_spend_orm): exact values on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from metrics.budgets import budget_refusal, budget_status
from metrics.models import Budget, ModelCall, RunUsage
from metrics.reports import pricing_of
from tests.compiled import compiled_queries

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


# -- the budget check's prepared statement against the ORM query it replaces -----------------

def _spend_rows(alice, bob, carol) -> list[tuple]:
    """alice: every kind of row at and around the edges of December (to NOW); bob: runs, no budget;
    carol: a budget and nothing but a running row. (user, run, start, status, cost, pricing, unpriced)"""
    tick = timedelta(microseconds=1)
    since = datetime(2026, 12, 1, tzinfo=UTC)
    return [
        (alice, "at-since", since, "completed", "0.10000001", "priced", 0),
        (alice, "before-since", since - tick, "completed", "7.00000000", "priced", 0),
        (alice, "at-now", NOW, "error", "0.00000001", "priced", 0),
        (alice, "after-now", NOW + tick, "completed", "8.00000000", "priced", 0),
        (alice, "partial", datetime(2026, 12, 3, 12, tzinfo=UTC), "completed", "1234567.12345678", "partial", 40),
        (alice, "unpriced", datetime(2026, 12, 3, 13, tzinfo=UTC), "cancelled", None, "unpriced", 30),
        (alice, "free", datetime(2026, 12, 4, tzinfo=UTC), "timed_out", "0", "priced", 0),
        (alice, "paused", datetime(2026, 12, 5, tzinfo=UTC), "paused", "0.20000002", "priced", 0),
        (alice, "running", datetime(2026, 12, 6, tzinfo=UTC), "running", "3.00000000", "priced", 5),
        (bob, "bob", datetime(2026, 12, 2, tzinfo=UTC), "completed", "5.00000000", "priced", 0),
        (carol, "carol-running", datetime(2026, 12, 2, tzinfo=UTC), "running", None, "unpriced", 9),
    ]


def _as_compared(row: dict | None):
    """A with_spend row with each value's type and text: Decimal('0.50') is not Decimal('0.5000')."""
    return None if row is None else {key: (type(value).__name__, str(value)) for key, value in row.items()}


def test_the_budget_checks_prepared_statement_reads_what_the_orm_query_reads(alice, bob, django_user_model):
    """Guards the hand-written statement (metrics.budget_spend._build_with_spend_statement) against
    drifting from the ORM query it stands for: every user, period and edge, exact types and places."""
    carol, dave = (django_user_model.objects.create_user(name, password=f"{name}-password-1")
                   for name in ("carol", "dave"))
    for user, run_id, started, status, cost, pricing, unpriced in _spend_rows(alice, bob, carol):
        RunUsage.objects.create(run_id=run_id, user=user, session_id="s", team_id="cirkelline", model="m",
                                status=status, started_at=started, finished_at=started,
                                cost=None if cost is None else Decimal(cost), pricing=pricing,
                                unpriced_tokens=unpriced)
    Budget.objects.create(user=alice, monthly_limit=Decimal("5"))
    Budget.objects.create(user=carol, monthly_limit=Decimal("0.10"))
    Budget.objects.create(user=dave, monthly_limit=Decimal("1234567890.99"))
    tick = timedelta(microseconds=1)
    december, copenhagen = datetime(2026, 12, 1, tzinfo=UTC), ZoneInfo("Europe/Copenhagen")
    periods = [(december, NOW), (december + tick, NOW - tick), (december - tick, NOW + tick),
               (datetime(2026, 12, 1, tzinfo=copenhagen), NOW.astimezone(copenhagen)),
               (datetime(2026, 12, 3, 12, tzinfo=UTC), datetime(2026, 12, 3, 12, tzinfo=UTC)),
               (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC))]
    seen = []
    for user in (alice, bob, carol, dave):
        for since, until in periods:
            fast = Budget.objects.with_spend(user.pk, since, until)
            assert _as_compared(fast) == _as_compared(Budget.objects.with_spend_orm(user.pk, since, until)), \
                (user.username, since, until)
            seen.append(fast)
    assert Budget.objects.with_spend(10**9, december, NOW) is None  # no such user
    # The data set reaches every case: no budget, a budget without runs, priced, partial,
    # unpriced, paused and running rows, and both edges of the period.
    assert seen[6:12] == [None] * 6  # bob
    assert seen[0] == {"limit": Decimal("5.00"), "cost": Decimal("1234567.42345682"), "unpriced_runs": 2,
                       "unpriced_tokens": 70}
    assert str(seen[0]["cost"]) == "1234567.42345682" and str(seen[0]["limit"]) == "5.00"
    assert seen[1]["cost"] == Decimal("1234567.32345680")  # neither edge
    assert seen[2]["cost"] == Decimal("1234582.42345682")  # a tick wider: the rows just outside
    assert seen[12] == {"limit": Decimal("0.10"), "cost": Decimal("0"), "unpriced_runs": 0, "unpriced_tokens": 0}
    assert seen[4] == {"limit": Decimal("5.00"), "cost": Decimal("1234567.12345678"), "unpriced_runs": 1,
                       "unpriced_tokens": 40}
    assert seen[18]["limit"] == Decimal("1234567890.99")


def test_the_run_paths_budget_check_compiles_no_query(alice, django_assert_num_queries):
    """Guards against the run path's budget check going back to the ORM query (compiled on every
    call): budget_refusal, the check the claim and the naming call make, runs its one prepared
    statement and no compiler."""
    Budget.objects.create(user=alice, monthly_limit=Decimal("1.00"))
    _run("in", alice, datetime(2026, 12, 2, tzinfo=UTC), cost="0.50000000", pricing="priced")
    budget_refusal(alice.pk, NOW)  # the statement is built once per database vendor
    with compiled_queries() as compiled, \
            django_assert_num_queries(1):
        assert budget_refusal(alice.pk, NOW) is None
    assert compiled.count == 0
    with compiled_queries() as compiled:
        Budget.objects.with_spend_orm(alice.pk, datetime(2026, 12, 1, tzinfo=UTC), NOW)
    assert compiled.count > 0  # the patch sees a compiled query
