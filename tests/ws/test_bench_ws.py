"""Smoke test of the websocket bench scenario: one round of N=5 runs over /ws/chat/, end to end.

As tests/bench/test_bench_smoke.py for SSE: a real Daphne on the test database, the loopback fake
provider, the harness's load generator (`--client ws`) as a subprocess. It checks that every
run streamed to its terminal event with no error; it asserts no timings.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

import bench.run
from bench.common import profile_named
from bench.run import Options, measure_round, parse_scenario, serve, server_env
from bench.servers import ServerSpec
from tests.doubles.fake_openai import FakeProvider

from .. import live

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

N = 5


def test_the_websocket_scenario_runs_a_round(tmp_path, django_user_model, monkeypatch):
    """Guards against the websocket bench measuring errors (or nothing) instead of runs."""
    assert parse_scenario("cirkelline-ws-daphne-1w-sqlite-1s").transport == "ws"
    # The server's port from where tests' servers take theirs (tests/live.py), not from the range
    # every client connection draws from.
    monkeypatch.setattr(bench.run, "free_port", live.free_port)
    users = [django_user_model.objects.create_user(f"bench-ws-{i}") for i in range(N)]
    tokens_file = tmp_path / "tokens.txt"
    tokens_file.write_text("\n".join(str(AccessToken.for_user(user)) for user in users) + "\n")
    # Deltas 28 ms apart (0.5 s calls): the server merges the deltas already waiting when it writes,
    # and on a loaded machine 5 ms apart (0.1 s calls) too many were for the event count below.
    profile = profile_named("0.5s")
    options = Options(results_dir=tmp_path / "results", date="2000-01-01", warmup=0, run_timeout=30, settle=0.5)
    with FakeProvider(**profile.provider_kwargs()) as provider:
        env = server_env(tmp_path, provider.base_url)
        env.update({"DATABASE_URL": live.test_database_url(), "DJANGO_SECRET_KEY": settings.SECRET_KEY,
                    "CIRKELLINE_REDIS_PREFIX": settings.CIRKELLINE_REDIS_PREFIX})
        with serve(ServerSpec("cirkelline", "daphne"), env, tmp_path, tokens_file=tokens_file, client="ws") as sut:
            result = measure_round(sut, N, profile, options)
        assert provider.wait_idle_sync(5.0)
    assert result["runs"] == N and result["errors"] == 0, result["error_kinds"]
    assert all(r["status"] == 101 and r["terminal"] == "TeamRunCompleted" and r["ttft"] is not None
               for r in result["records"])
    assert all(r["events"] > 20 for r in result["records"])
