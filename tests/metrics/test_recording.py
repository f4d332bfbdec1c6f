"""The usage row is written once per run, whatever retries the write."""

from decimal import Decimal

import pytest
from django.utils import timezone

from metrics.models import RunUsage
from metrics.recording import record_run_usage

pytestmark = pytest.mark.django_db


def test_recording_the_same_run_twice_keeps_one_row_unchanged(alice):
    now = timezone.now()
    fields = dict(run_id="r-1", user_id=alice.pk, session_id="s", team_id="cirkelline", status="completed",
                  total_tokens=10, started_at=now, finished_at=now)
    record_run_usage(fields)
    record_run_usage({**fields, "total_tokens": 999})
    assert list(RunUsage.objects.values_list("run_id", "total_tokens")) == [("r-1", 10)]


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError, match="unknown RunUsage fields"):
        record_run_usage({"run_id": "x", "tokens": 1})


# -- a run's row from its admission on: running, then exactly one terminal write --------------

def _running(run_id="r-run", user=None, worker="host:1:aa", started=None):
    from metrics.recording import record_running

    started = started or timezone.now()
    record_running(dict(run_id=run_id, user_id=user.pk if user else None, session_id="s", team_id="cirkelline",
                        model="scripted", started_at=started, worker=worker))
    return started


def test_the_final_write_ends_the_running_row_it_does_not_add_one(alice):
    """Guards against record_run inserting beside the running row (two rows) or, finding a row,
    leaving it `running` (the run would be lost in reports and closed later as worker_lost)."""
    from metrics.models import ModelCall
    from metrics.recording import record_run

    from .helpers import call, rule, usage

    rule()
    started = _running(user=alice)
    assert RunUsage.objects.get().status == "running"
    cost = record_run(usage("r-run", user=alice, started=started), [call(input_tokens=1_000_000)])
    row = RunUsage.objects.get()
    assert (row.status, row.worker, row.live_ledger, row.cost, cost) == (
        "completed", "host:1:aa", None, Decimal("1"), Decimal("1"))
    assert ModelCall.objects.count() == 1
    # A second terminal write (a retried flush, or the owner after another process closed it) adds nothing.
    assert record_run(usage("r-run", user=alice, started=started, status="cancelled"), [call(input_tokens=5)]) is None
    assert RunUsage.objects.get().status == "completed" and ModelCall.objects.count() == 1


def test_closing_a_running_row_bills_the_calls_of_its_live_ledger(alice):
    """Guards against closing a dead worker's run without its completed calls (the provider
    billed them; nobody here would have)."""
    from metrics.models import ModelCall
    from metrics.recording import close_running, record_run, update_live_ledgers

    from .helpers import call, rule, usage

    rule()
    started = _running(user=alice)
    ledger = [call(input_tokens=1_000_000, output_tokens=500_000),
              call(agent="research-specialist", calls=2, input_tokens=2_000_000)]
    tokens = {"input_tokens": 3_000_000, "output_tokens": 500_000, "total_tokens": 3_500_000}
    update_live_ledgers([("r-run", tokens, 3, ledger)])
    live = RunUsage.objects.get()
    assert (live.status, live.input_tokens, live.model_calls, live.live_ledger) == ("running", 3_000_000, 3, ledger)

    ended = timezone.now()
    closed = close_running("r-run", status="error", error_type="worker_lost", error_message="gone",
                           finished_at=ended)
    row = RunUsage.objects.get()
    assert closed is not None and closed["user_id"] == alice.pk
    assert (row.status, row.error_type, row.finished_at, row.live_ledger) == ("error", "worker_lost", ended, None)
    assert (row.input_tokens, row.output_tokens, row.total_tokens, row.model_calls) == (3_000_000, 500_000,
                                                                                        3_500_000, 3)
    assert row.cost == Decimal("4") and row.pricing == "priced"  # 1 + 1 (output at 2/M) + 2
    assert sorted(ModelCall.objects.values_list("agent", "calls")) == [("cirkelline", 1), ("research-specialist", 2)]
    # Exactly one terminal write: a second close, the owner's late final write, a late tally: no effect.
    assert close_running("r-run", status="error", error_type="worker_lost", error_message="", finished_at=ended) is None
    assert record_run(usage("r-run", user=alice, started=started), [call(input_tokens=9)]) is None
    update_live_ledgers([("r-run", {"input_tokens": 1}, 1, [])])
    assert RunUsage.objects.get().input_tokens == 3_000_000 and ModelCall.objects.count() == 2


def test_reports_and_budgets_leave_running_rows_out(alice):
    """A running row has no cost yet: counting it would show an unpriced run in every report."""
    from datetime import date

    from metrics.budgets import budget_status
    from metrics.models import Budget

    Budget.objects.create(user=alice, monthly_limit=Decimal("5"))
    now = timezone.now()
    _running(user=alice, started=now)
    record_run_usage(dict(run_id="r-done", user_id=alice.pk, session_id="s", team_id="cirkelline",
                          status="completed", pricing="priced", cost=Decimal("0"), started_at=now, finished_at=now))
    today = timezone.localdate(now)
    assert list(RunUsage.objects.for_period(today, today).values_list("run_id", flat=True)) == ["r-done"]
    assert RunUsage.objects.filter(user=alice).for_period(date(2000, 1, 1), today).usage_totals()["runs"] == 1
    assert budget_status(alice.pk, now).unpriced_runs == 0
