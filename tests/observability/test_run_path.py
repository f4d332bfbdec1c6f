"""Real runs through the API show up in /metrics and in the run log lines (once the run service calls the hooks).

Strict xfail until the run service calls chat.observability.hooks (the calls the layout issue's
chat/runs/* gets, listed in docs/OPERATIONS.md, "Wiring"): the day they are wired these pass, and
the strict marker fails the suite until it is removed.
"""

from __future__ import annotations

import json

import pytest

from chat.agents.scripted import provider_error
from metrics.models import RunUsage
from tests.conftest import adb, bearer
from tests.observability.conftest import AsgiStream, form, total

pytestmark = [
    pytest.mark.django_db(transaction=True),
]

RUNS = "/teams/cirkelline/runs"


async def _run(api, user, request_id: str) -> int:
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"},
                              headers={**bearer(user), "X-Request-ID": request_id})
    return response.status_code


async def test_completed_failed_rate_limited_cancelled_and_refused_runs_are_counted(api, alice, failures, scrape,
                                                                                   settings, use_latency, log_lines):
    """Guards against runs, retries and refusals the operator cannot see (no counts, no run lines)."""
    settings.CIRKELLINE_RETRY_DELAY = 0.01
    settings.CIRKELLINE_MAX_RUNS_PER_USER = 1
    before = await scrape()
    assert await _run(api, alice, "completed-1") == 200
    failures.push(provider_error(500), times=settings.CIRKELLINE_MAX_RETRIES + 1)
    assert await _run(api, alice, "failed-1") == 502
    failures.push(provider_error(429), times=settings.CIRKELLINE_MAX_RETRIES + 1)
    assert await _run(api, alice, "limited-1") == 429
    use_latency(30.0)
    form_headers, body = form(message="hi")
    async with AsgiStream("POST", RUNS, {**bearer(alice), **form_headers}, body) as stream:
        lines = stream.lines()
        async for line in lines:
            if line.startswith("data: "):
                run_id = json.loads(line[6:])["run_id"]
                break
        assert await _run(api, alice, "refused-1") == 429  # alice's one slot is taken
        cancel = await api.post(f"{RUNS}/{run_id}/cancel", headers=bearer(alice))
        assert cancel.status_code == 200
        assert any(['"TeamRunCancelled"' in line async for line in lines])
    after = await scrape()

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("cirkelline_runs_total", status="completed") == 1
    assert delta("cirkelline_runs_total", status="error", error_type="provider_error") == 1
    assert delta("cirkelline_runs_total", status="rate_limited", error_type="rate_limited") == 1
    assert delta("cirkelline_runs_total", status="cancelled") == 1
    assert delta("cirkelline_run_duration_seconds_count") == 4
    assert delta("cirkelline_run_time_to_first_token_seconds_count") >= 1
    assert delta("cirkelline_tokens_total", kind="input") > 0
    assert delta("cirkelline_provider_retries_total", reason="server_error") == settings.CIRKELLINE_MAX_RETRIES
    assert delta("cirkelline_provider_retries_total", reason="rate_limited") == settings.CIRKELLINE_MAX_RETRIES
    assert delta("cirkelline_provider_calls_total", outcome="ok") >= 1
    assert delta("cirkelline_admissions_refused_total", scope="user") == 1
    run_lines = {r.request_id: r for r in log_lines.records if r.name == "cirkelline.run"}
    assert run_lines["completed-1"].status == "completed" and run_lines["completed-1"].run_id != "-"
    assert run_lines["failed-1"].error_type == "provider_error"
    assert [r.scope for r in log_lines.records if r.name == "cirkelline.admission"] == ["user"]


async def test_the_usage_row_carries_the_request_id(api, alice):
    """Guards against a usage row that cannot be tied to the request (and its log lines) that started it."""
    assert await _run(api, alice, "abc-123") == 200
    assert await adb(lambda: list(RunUsage.objects.values_list("request_id", flat=True))) == ["abc-123"]


async def test_with_telemetry_off_a_run_is_neither_counted_nor_logged(api, alice, scrape, settings, log_lines):
    """Guards against the benchmark's "off" side (CIRKELLINE_TELEMETRY=false) still counting or
    logging runs, which would make the measured overhead of metrics and logs meaningless."""
    before = await scrape()
    settings.CIRKELLINE_TELEMETRY = False
    assert await _run(api, alice, "quiet-1") == 200
    settings.CIRKELLINE_TELEMETRY = True
    after = await scrape()
    assert total(after, "cirkelline_runs_total") == total(before, "cirkelline_runs_total")
    assert total(after, "cirkelline_provider_calls_total") == total(before, "cirkelline_provider_calls_total")
    assert [r for r in log_lines.records if r.name == "cirkelline.run"] == []
    assert await adb(lambda: list(RunUsage.objects.values_list("request_id", flat=True))) == ["quiet-1"]


async def test_a_budget_refusal_is_counted_and_logged_with_its_scope(api, alice, scrape, log_lines):
    """Guards against 402s the operator cannot see (users stopped by their budget, silently)."""
    from tests.budgets import budget, spent

    await adb(budget, alice, "1.00")
    await adb(spent, alice, "1.00000000")
    before = await scrape()
    assert await _run(api, alice, "budget-1") == 402
    after = await scrape()
    assert total(after, "cirkelline_admissions_refused_total", scope="budget") == \
        total(before, "cirkelline_admissions_refused_total", scope="budget") + 1
    lines = [r for r in log_lines.records if r.name == "cirkelline.admission"]
    assert [(r.scope, r.user_id, r.request_id) for r in lines] == [("budget", alice.pk, "budget-1")]
