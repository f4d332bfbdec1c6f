"""Monthly budgets: a user at or over the limit is refused a new run; unpriced spend is reported, not guessed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from metrics.budgets import budget_refusal, budget_status
from metrics.models import Budget
from metrics.recording import record_run

from .helpers import call, rule, usage

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def priced():
    return rule("scripted", "scripted", "1.00", "0")


def _spend(user, run_id, dollars: int, started=datetime(2026, 12, 5, tzinfo=UTC), model="scripted",
           provider="Scripted"):
    record_run(usage(run_id, user=user, started=started), [call(model=model, provider=provider,
                                                                input_tokens=dollars * 1_000_000)])


def test_no_budget_means_no_refusal(alice, priced):
    _spend(alice, "r1", 1000)
    assert budget_refusal(alice.pk, NOW) is None


def test_a_user_under_the_limit_may_run_and_at_the_limit_is_refused(alice, priced):
    """Guards against an off-by-one: the limit itself is 'used up' (spend >= limit)."""
    Budget.objects.create(user=alice, monthly_limit=Decimal("5.00"))
    _spend(alice, "r1", 4)
    assert budget_refusal(alice.pk, NOW) is None
    _spend(alice, "r2", 1)
    message = budget_refusal(alice.pk, NOW)
    assert message == ("Your monthly budget of $5.00 is used up: $5.00 spent since 01 December 2026. New messages "
                       "can be sent again next month, or when an administrator raises the budget.")


def test_last_months_runs_and_other_users_runs_do_not_count(alice, bob, priced):
    """Guards against charging a user for someone else's spend or for a previous month."""
    Budget.objects.create(user=alice, monthly_limit=Decimal("5.00"))
    _spend(alice, "november", 50, started=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    _spend(bob, "bobs", 50)
    _spend(alice, "mine", 2)
    status = budget_status(alice.pk, NOW)
    assert (status.spent, status.exhausted) == (Decimal("2.00000000"), False)
    assert budget_refusal(alice.pk, NOW) is None


def test_unpriced_spend_is_reported_beside_the_budget_never_guessed(alice, priced):
    Budget.objects.create(user=alice, monthly_limit=Decimal("1.00"))
    _spend(alice, "unknown-model", 7, model="mystery", provider="Nowhere")
    status = budget_status(alice.pk, NOW)
    assert (status.spent, status.unpriced_runs, status.unpriced_tokens) == (Decimal("0"), 1, 7_000_000)
    assert budget_refusal(alice.pk, NOW) is None
    _spend(alice, "priced", 1)
    assert budget_refusal(alice.pk, NOW).endswith("(7000000 tokens of models without a price are not included.)")


def test_member_calls_count_toward_the_budget(alice, priced):
    """Guards against counting the leader's calls only: 0.60 + 0.40 of one run reach a 1.00 budget."""
    Budget.objects.create(user=alice, monthly_limit=Decimal("1.00"))
    record_run(usage("team-run", user=alice, started=datetime(2026, 12, 5, tzinfo=UTC)),
               [call(agent="cirkelline", input_tokens=600_000),
                call(agent="research-specialist", input_tokens=400_000)])
    assert budget_status(alice.pk, NOW).spent == Decimal("1.00000000")
    assert budget_refusal(alice.pk, NOW) is not None


def test_paused_and_expired_runs_count_toward_the_budget_and_the_reports(alice, priced):
    """A run waiting for its user (`paused`) has spent its first part; one that expired too. Both are
    in the month's spend and the usage report's cost, as every row that is not running is."""
    from metrics.models import RunUsage

    Budget.objects.create(user=alice, monthly_limit=Decimal("5.00"))
    record_run(usage("paused", user=alice, started=datetime(2026, 12, 5, tzinfo=UTC), status="paused"),
               [call(input_tokens=3_000_000)])
    record_run(usage("expired", user=alice, started=datetime(2026, 12, 5, tzinfo=UTC), status="expired"),
               [call(input_tokens=1_000_000)])
    assert budget_status(alice.pk, NOW).spent == Decimal("4")
    assert budget_refusal(alice.pk, NOW) is None
    totals = RunUsage.objects.for_period(datetime(2026, 12, 1).date(), datetime(2026, 12, 31).date()).totals()
    assert totals["runs"] == 2 and totals["cost"] == Decimal("4")
    _spend(alice, "r3", 1)
    assert budget_refusal(alice.pk, NOW) is not None
