"""/metrics: protected, parsed with prometheus-client's own parser, counting what the hooks report."""

from __future__ import annotations

import uuid

import pytest
from django.db import connections
from django.test import Client

from chat.observability import hooks, prom
from tests.conftest import adb, bearer
from tests.observability.conftest import METRICS_TOKEN, parse_metrics, total, value

pytestmark = pytest.mark.django_db(transaction=True)


def _session_cookie(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


@pytest.fixture
def alices_session(alice) -> dict[str, str]:
    return _session_cookie(alice)


@pytest.fixture
def staff_session(django_user_model) -> dict[str, str]:
    staff = django_user_model.objects.create_user("staff", password="staff-password-1", is_staff=True)
    return _session_cookie(staff)


async def test_metrics_are_refused_without_the_token_or_a_staff_session(api, alice, alices_session, metrics_token,
                                                                      settings):
    """Guards against an open /metrics, a token compared loosely, and an empty token setting accepting anyone."""
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Bearer {metrics_token}x"},
                    {"Authorization": f"Basic {metrics_token}"}, bearer(alice), alices_session):
        response = await api.get("/metrics", headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["detail"] == "Metrics need a staff session or the metrics bearer token."
        assert "cirkelline_" not in response.text
    settings.CIRKELLINE_METRICS_TOKEN = ""
    assert (await api.get("/metrics", headers={"Authorization": "Bearer "})).status_code == 403
    assert (await api.get("/metrics", headers={"Authorization": "Bearer"})).status_code == 403


async def test_metrics_answer_the_bearer_token_and_a_staff_session(api, staff_session, metrics_token):
    """Guards against the token or a staff login not being accepted (Prometheus and staff locked out)."""
    by_token = await api.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
    assert by_token.status_code == 200 and by_token.headers["Content-Type"].startswith("text/plain")
    by_session = await api.get("/metrics", headers=staff_session)
    assert by_session.status_code == 200
    for response in (by_token, by_session):
        names = {name for name, _ in parse_metrics(response.text)}
        assert "cirkelline_event_loop_lag_seconds_count" in names


def _usage(model: str, status: str, error_type: str = "", **extra) -> dict:
    return {"run_id": str(uuid.uuid4()), "user_id": 1, "team_id": "cirkelline", "model": model, "status": status,
            "error_type": error_type, "input_tokens": 100, "output_tokens": 20, "total_tokens": 120,
            "duration_ms": 1500, "ttft_ms": 250, "retries": 0, "delegations": 0, **extra}


async def test_the_hooks_show_up_as_counts_and_histogram_sums(scrape):
    """Guards against hooks that update the wrong metric or label, or histograms that lose observations."""
    model = f"test-model-{uuid.uuid4().hex[:8]}"  # this test's own label values: other processes cannot touch them
    before = await scrape()
    hooks.run_finished(_usage(model, "completed"), cost="0.0125")
    hooks.run_finished(_usage(model, "completed", output_tokens=30, duration_ms=2500), cost=0.0075)
    hooks.run_finished(_usage(model, "error", "provider_error", ttft_ms=None))
    hooks.run_finished(_usage(model, "rate_limited", "rate_limited", ttft_ms=None))
    hooks.run_finished(_usage(model, "cancelled"))
    hooks.provider_call_ended(ok=True)
    hooks.provider_call_ended(429)
    hooks.provider_call_ended(timed_out=True)
    hooks.provider_retry(status_code=429, attempt=1, delay_s=0.5, mid_stream=False)
    hooks.provider_retry(status_code=None, attempt=1, delay_s=0.5, mid_stream=True)
    hooks.admission_refused(scope="user", user_id=1, retry_after=5, limit=3)
    prom.delegation_failure("member_stalled")
    prom.websocket_opened()
    prom.websocket_opened()
    prom.websocket_closed()
    after = await scrape()

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert value(after, "cirkelline_runs_total", status="completed", error_type="", model=model) == 2
    assert value(after, "cirkelline_runs_total", status="error", error_type="provider_error", model=model) == 1
    assert value(after, "cirkelline_runs_total", status="rate_limited", error_type="rate_limited", model=model) == 1
    assert value(after, "cirkelline_runs_total", status="cancelled", error_type="", model=model) == 1
    assert value(after, "cirkelline_tokens_total", model=model, kind="input") == 500
    assert value(after, "cirkelline_tokens_total", model=model, kind="output") == 110
    assert value(after, "cirkelline_tokens_total", model=model, kind="reasoning") == 0  # zero counts add nothing
    assert value(after, "cirkelline_cost_usd_total", model=model) == pytest.approx(0.02)
    assert value(after, "cirkelline_run_time_to_first_token_seconds_count", model=model) == 3
    assert value(after, "cirkelline_run_time_to_first_token_seconds_sum", model=model) == pytest.approx(0.75)
    assert delta("cirkelline_run_duration_seconds_count", status="completed") == 2
    assert delta("cirkelline_run_duration_seconds_sum", status="completed") == pytest.approx(4.0)
    assert delta("cirkelline_run_duration_seconds_bucket", status="completed", le="2.0") == 1
    assert delta("cirkelline_provider_calls_total", outcome="ok") == 1
    assert delta("cirkelline_provider_calls_total", outcome="rate_limited") == 1
    assert delta("cirkelline_provider_calls_total", outcome="timeout") == 1
    assert delta("cirkelline_provider_retries_total", reason="rate_limited") == 1
    assert delta("cirkelline_provider_retries_total", reason="connection_error") == 1
    assert delta("cirkelline_admissions_refused_total", scope="user") == 1
    assert delta("cirkelline_delegation_failures_total", kind="member_stalled") == 1
    assert delta("cirkelline_websocket_connections") == 1


async def test_http_requests_are_counted_by_route_template_and_streams_get_no_duration(api, alice, scrape):
    """Guards against raw paths as labels (unbounded), and streamed runs timed to their first byte as if done."""
    before = await scrape()
    for session_id in ("one", "two", "three"):
        assert (await api.get(f"/sessions/{session_id}", headers=bearer(alice))).status_code == 404
    assert (await api.get("/no/such/route")).status_code == 404
    streamed = await api.post("/teams/cirkelline/runs", data={"message": "hi"}, headers=bearer(alice))
    assert streamed.status_code == 200
    after = await scrape()

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("cirkelline_http_requests_total", route="sessions/<str:session_id>", method="GET", status="404") == 3
    assert delta("cirkelline_http_request_duration_seconds_count", route="sessions/<str:session_id>",
                 method="GET") == 3
    assert delta("cirkelline_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert not any("one" in dict(labels).get("route", "") for _, labels in after)
    runs = {"route": "teams/<str:team_id>/runs", "method": "POST"}
    assert delta("cirkelline_http_requests_total", status="200", **runs) == 1
    assert delta("cirkelline_http_request_duration_seconds_count", **runs) == 0


async def test_sampled_gauges_are_read_at_scrape_time(scrape):
    """Guards against the database executor's queue depth (a registered callback) not being read."""
    depth = {"value": 7}
    prom.register_db_queue_depth(lambda: depth["value"])
    try:
        first = total(await scrape(), "cirkelline_db_executor_queue_depth")
        depth["value"] = 10
        second = total(await scrape(), "cirkelline_db_executor_queue_depth")
    finally:
        prom.register_db_queue_depth(lambda: 0)
    assert second - first == 3


def _select_one() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")


async def test_the_postgresql_pool_is_sampled_at_scrape_time(scrape):
    """Guards against pool gauges that never move (the pool looked up where it is not, or opened by the read)."""
    if connections["default"].vendor != "postgresql":
        pytest.skip("the connection pool exists on PostgreSQL only")
    await adb(_select_one)  # the pool is open
    samples = await scrape()
    assert total(samples, "cirkelline_db_pool_size") >= 1
    assert total(samples, "cirkelline_db_pool_waiting") >= 0 and "cirkelline_db_pool_in_use" in {n for n, _ in samples}


def test_methods_other_than_get_are_refused(client):
    """Guards against /metrics answering writes (or a CSRF 403 in HTML instead of a JSON 405)."""
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 405 and response.json()["detail"].startswith("Method POST")
