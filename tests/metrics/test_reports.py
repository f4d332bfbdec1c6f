"""The report QuerySets: the numbers behind the admin reports, on known rows (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from metrics.models import DelegationFailure, RunUsage
from metrics.percentiles import percentile_cont

from .conftest import GEMINI, LOCAL

pytestmark = pytest.mark.django_db
DEC = date(2026, 12, 1), date(2026, 12, 3)


def _by_key(rows):
    return {row["key"]: row for row in rows}


def test_percentile_cont_interpolates_like_postgresql():
    assert percentile_cont([], 0.5) is None
    assert percentile_cont([7], 0.95) == 7
    assert percentile_cont([1000, 3000], 0.5) == 2000
    assert percentile_cont([500, 4000, 10000], 0.95) == pytest.approx(9400)


def test_usage_by_day(report_rows):
    """Guards against wrong grouping, a cost summed as floats, and percentiles over the wrong rows."""
    rows = _by_key(RunUsage.objects.for_period(*DEC).report("day"))
    assert list(rows) == [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)]
    first, second, third = rows.values()
    assert (first["runs"], first["input_tokens"], first["output_tokens"], first["total_tokens"]) == (2, 110, 50, 160)
    assert first["cost"] == Decimal("0.10000001")
    assert (first["p50_duration_ms"], first["p95_duration_ms"]) == (pytest.approx(2000), pytest.approx(2900))
    assert (first["p50_ttft_ms"], first["p95_ttft_ms"]) == (pytest.approx(200), pytest.approx(200))
    assert (first["error_rate"], first["cancelled_rate"]) == (0.5, 0.0)
    assert second["cost"] == Decimal("0.20000000") and second["unpriced_share"] == pytest.approx(50 / 350)
    assert (second["p50_ttft_ms"], second["p95_ttft_ms"]) == (pytest.approx(250), pytest.approx(385))
    assert (second["cancelled_rate"], third["rate_limited_rate"], third["timed_out_rate"]) == (0.5, 0.5, 0.5)
    assert third["p95_duration_ms"] == pytest.approx(9700) and third["unpriced_share"] == pytest.approx(0.2)


def test_usage_by_user_and_by_model(report_rows):
    users = _by_key(RunUsage.objects.for_period(*DEC).report("user"))
    assert (users["alice"]["runs"], users["alice"]["cost"], users["alice"]["p95_duration_ms"]) == (
        3, Decimal("0.30000001"), pytest.approx(2900))
    assert (users["bob"]["cost"], users["bob"]["p50_duration_ms"], users["bob"]["p95_duration_ms"]) == (
        Decimal("0.30000000"), pytest.approx(4000), pytest.approx(9400))
    models = _by_key(RunUsage.objects.for_period(*DEC).report("model"))
    assert models[GEMINI]["runs"] == 4 and models[GEMINI]["cost"] == Decimal("0.60000001")
    assert models[GEMINI]["unpriced_share"] == pytest.approx(20 / 560)
    assert (models[LOCAL]["runs"], models[LOCAL]["cost"], models[LOCAL]["unpriced_tokens"]) == (2, Decimal("0"), 50)


def test_totals_filters_and_period(report_rows, alice):
    totals = RunUsage.objects.for_period(*DEC).totals()
    keys = ("runs", "total_tokens", "cost", "unpriced_tokens", "unpriced_runs")
    assert tuple(totals[k] for k in keys) == (6, 610, Decimal("0.60000001"), 70, 2)
    assert RunUsage.objects.for_period(date(2026, 12, 2), date(2026, 12, 2)).totals()["runs"] == 2
    only = RunUsage.objects.for_period(*DEC).matching(user_id=alice.pk, status="completed").totals()
    assert (only["runs"], only["cost"]) == (2, Decimal("0.30000000"))
    assert RunUsage.objects.for_period(*DEC).matching(model=LOCAL).totals()["runs"] == 2


def _naming_call(user, run_id="n1"):
    return RunUsage.objects.create(
        run_id=run_id, user=user, session_id="s", team_id="cirkelline", kind="naming", model=GEMINI,
        status="completed", started_at=datetime(2026, 12, 2, 9, 1, tzinfo=UTC), finished_at=None, duration_ms=300,
        ttft_ms=None, input_tokens=30, output_tokens=6, total_tokens=36, cost=Decimal("0.00000500"), pricing="priced")


def test_naming_calls_are_a_kind_of_their_own(report_rows, alice):
    """Guards against the calls that name sessions being counted as chat runs, or left out of the costs."""
    _naming_call(alice)
    kinds = _by_key(RunUsage.objects.for_period(*DEC).report("kind"))
    assert list(kinds) == ["chat", "naming"]
    assert (kinds["chat"]["runs"], kinds["chat"]["total_tokens"], kinds["chat"]["cost"]) == (6, 610,
                                                                                            Decimal("0.60000001"))
    assert (kinds["naming"]["runs"], kinds["naming"]["total_tokens"], kinds["naming"]["cost"]) == (
        1, 36, Decimal("0.00000500"))
    assert kinds["naming"]["p50_duration_ms"] == pytest.approx(300)
    runs = RunUsage.objects.for_period(*DEC)
    assert runs.matching(kind="chat").totals()["runs"] == 6
    assert (runs.matching(kind="naming").totals()["cost"], runs.totals()["cost"]) == (
        Decimal("0.00000500"), Decimal("0.60000501"))


def test_the_daily_series_has_every_day_of_the_range(report_rows):
    series = RunUsage.objects.daily_series(date(2026, 12, 1), date(2026, 12, 4))
    assert [(s["day"].day, s["runs"], s["cost"]) for s in series] == [
        (1, 2, Decimal("0.10000001")), (2, 2, Decimal("0.20000000")), (3, 2, Decimal("0.30000000")),
        (4, 0, Decimal("0"))]


def test_delegation_failures_by_kind_member_model_and_day_with_rates(report_rows):
    """rate = failures / delegating runs (r3 and r6 delegated; r1 announced one): 3 delegating runs."""
    failures = DelegationFailure.objects.for_period(*DEC)
    runs = RunUsage.objects.for_period(*DEC)
    assert failures.delegating_runs(runs).count() == 3
    kinds = _by_key(failures.breakdown("kind", runs))
    assert (kinds["member_error"]["failures"], kinds["member_error"]["rate"]) == (1, pytest.approx(1 / 3))
    members = _by_key(failures.breakdown("member", runs))
    assert (members["audio-specialist"]["failures"], members["audio-specialist"]["runs"],
            members["audio-specialist"]["rate"]) == (2, 1, pytest.approx(2 / 3))
    models = _by_key(failures.breakdown("model", runs))
    assert (models[GEMINI]["failures"], models[GEMINI]["delegating_runs"]) == (4, 3)
    days = _by_key(failures.breakdown("day", runs))
    assert [(d.day, r["failures"], r["delegating_runs"]) for d, r in days.items()] == [(1, 1, 1), (2, 2, 1), (3, 1, 1)]


@pytest.fixture
def rows_fetched(monkeypatch):
    """How many result rows the database hands to Python (every query of the block)."""
    from django.db.backends.utils import CursorWrapper

    fetched = [0]

    def counting(name):
        def fetch(self, *args):
            result = getattr(self.cursor, name)(*args)
            fetched[0] += (result is not None) if name == "fetchone" else len(result)
            return result
        return fetch

    for name in ("fetchone", "fetchmany", "fetchall"):
        monkeypatch.setattr(CursorWrapper, name, counting(name), raising=False)
    return fetched


def test_the_usage_report_reads_the_periods_runs_at_most_once(alice, rows_fetched):
    """Guards against the report page reading every usage row of its period into Python three
    times over, with a Decimal and a date made per row (5.5 s for 100 000 rows on SQLite): costs,
    counts and days are aggregated in the database, and on SQLite, which has no percentile_cont,
    the report and its totals share one read of the two timing columns (none on PostgreSQL)."""
    started = datetime(2026, 12, 1, 10, tzinfo=UTC)
    RunUsage.objects.bulk_create([
        RunUsage(run_id=f"n{i}", user=alice, session_id="s", team_id="cirkelline", model=GEMINI, status="completed",
                 started_at=started + timedelta(minutes=i), finished_at=started, duration_ms=100 + i,
                 ttft_ms=None if i % 3 else 50 + i, input_tokens=i, output_tokens=1, total_tokens=i + 1,
                 cost=Decimal("0.00000001") * i, pricing="priced") for i in range(600)])
    runs = RunUsage.objects.for_period(*DEC)
    rows_fetched[0] = 0
    by_day, totals = runs.report_with_totals("day")
    series = runs.daily_series(*DEC)
    assert rows_fetched[0] <= 600 + 20, f"{rows_fetched[0]} rows read for a report of 600 runs"
    assert [r["runs"] for r in by_day] == [600] and totals["runs"] == 600 and series[0]["runs"] == 600
    assert totals["cost"] == by_day[0]["cost"] == series[0]["cost"] == Decimal("0.00000001") * sum(range(600))
    assert by_day[0]["p50_duration_ms"] == pytest.approx(percentile_cont(list(range(100, 700)), 0.5))
    assert totals["p95_ttft_ms"] == pytest.approx(percentile_cont([50 + i for i in range(0, 600, 3)], 0.95))
    assert (runs.report("day"), runs.totals()) == (by_day, totals)
