"""Several worker processes: /metrics on any of them shows the counts of all, and a restart starts clean."""

from __future__ import annotations

import httpx
import pytest

from tests.live import live_server
from tests.observability.conftest import METRICS_TOKEN, parse_metrics, value

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

REFUSED = {"route": "teams/<str:team_id>", "method": "GET", "status": "401"}


def _scrape(base_url: str) -> dict:
    response = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return parse_metrics(response.text)


def _refused_requests(base_url: str, count: int) -> None:
    for _ in range(count):
        assert httpx.get(f"{base_url}/teams/cirkelline", timeout=10).status_code == 401


def test_two_workers_on_one_metrics_dir_add_up_and_a_new_deployment_starts_from_zero(tmp_path):
    """Guards against per-process registries (a scrape sees one worker's share), a restarted worker
    taking its dead predecessor's counts away (totals must never go down), and a new start counting
    the last deployment's requests."""
    env = {"CIRKELLINE_METRICS_DIR": str(tmp_path), "CIRKELLINE_METRICS_TOKEN": METRICS_TOKEN}
    with live_server(env) as first:
        with live_server(env) as second:
            _refused_requests(first, 3)
            _refused_requests(second, 2)
            for base_url in (first, second):
                assert value(_scrape(base_url), "cirkelline_http_requests_total", **REFUSED) == 5
            assert len({path.name.rsplit("_", 1)[-1] for path in tmp_path.glob("counter_*.db")}) == 2
        with live_server(env) as restarted_worker:  # the second worker died; a new one joins the first
            _refused_requests(restarted_worker, 1)
            assert value(_scrape(first), "cirkelline_http_requests_total", **REFUSED) == 6
    with live_server(env) as new_deployment:
        assert value(_scrape(new_deployment), "cirkelline_http_requests_total", **REFUSED) == 0
        _refused_requests(new_deployment, 1)
        assert value(_scrape(new_deployment), "cirkelline_http_requests_total", **REFUSED) == 1
