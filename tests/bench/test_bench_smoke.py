"""Smoke test of the load harness (bench/): one round of N=5 streamed runs, end to end.

A real Cirkelline server (Daphne, started by the harness itself) on the test database, the
loopback fake provider with short latencies, the harness's load generator as a subprocess,
and its server-side measurements (CPU, RSS, loop lag, DB connections on PostgreSQL). It
checks that the harness completes with 0 errors and writes a result file and a table; it
asserts no timings, so it holds on any machine. AgentOS is not involved (CI does not install
agno[os]).
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

import bench.run
from bench.common import profile_named
from bench.procstats import PgConnectionCounter
from bench.report import write_report
from bench.run import Options, Scenario, measure_round, serve, server_env, write_result
from bench.servers import ServerSpec
from tests import live
from tests.doubles.fake_openai import FakeProvider

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

N = 5


def _pg_counter() -> PgConnectionCounter | None:
    """Counts the test database's PostgreSQL connections (None on SQLite)."""
    if connection.vendor != "postgresql":
        return None
    base = live.test_database_url().rsplit("/", 1)[0]
    return PgConnectionCounter(f"{base}/postgres", connection.settings_dict["NAME"])


def test_the_harness_runs_a_round_and_writes_a_result(tmp_path, django_user_model, monkeypatch):
    """Guards against a harness that no longer measures a round end to end, or writes a result whose
    summary (what the tables are regenerated from, the raw per-run file being git-ignored) is missing."""
    # The server's port from where tests' servers take theirs (tests/live.py), not from the range
    # every client connection draws from.
    monkeypatch.setattr(bench.run, "free_port", live.free_port)
    users = [django_user_model.objects.create_user(f"bench-smoke-{i}") for i in range(N)]
    tokens_file = tmp_path / "tokens.txt"
    tokens_file.write_text("\n".join(str(AccessToken.for_user(user)) for user in users) + "\n")
    # Deltas 28 ms apart (0.5 s calls): the server merges the deltas already waiting when it writes,
    # and on a loaded machine 5 ms apart (0.1 s calls) too many were for the event count below.
    profile = profile_named("0.5s")
    scenario = Scenario("cirkelline-daphne-1w-test-0.5s", "cirkelline", "daphne", 1, connection.vendor, profile)
    options = Options(results_dir=tmp_path / "results", date="2000-01-01", warmup=0, run_timeout=30)
    counter = _pg_counter()

    try:
        with FakeProvider(**profile.provider_kwargs()) as provider:
            env = server_env(tmp_path, provider.base_url)
            env.update({
                "DATABASE_URL": live.test_database_url(),
                # Tokens minted here must verify there: the same signing key.
                "DJANGO_SECRET_KEY": settings.SECRET_KEY,
                "CIRKELLINE_REDIS_PREFIX": settings.CIRKELLINE_REDIS_PREFIX,
            })
            with serve(ServerSpec("cirkelline", "daphne"), env, tmp_path, tokens_file=tokens_file,
                       db_counter=counter) as sut:
                result = measure_round(sut, N, profile, options)
            assert provider.wait_idle_sync(30.0)
    finally:
        if counter is not None:
            counter.close()

    assert result["runs"] == N and result["errors"] == 0, result["error_kinds"]
    assert all(r["terminal"] == "TeamRunCompleted" and r["ttft"] is not None for r in result["records"])
    assert all(r["events"] > 20 for r in result["records"])  # the delegated run streamed its frames
    assert result["server_cpu_s"] > 0 and result["rss_peak_mb"] > 0
    assert result["loop_lag_p99_ms"] is not None
    if counter is not None:
        assert result["db_connections_peak"] >= 1

    path = write_result(scenario, [result], options, started=0.0)
    saved = json.loads(path.read_text())
    assert path.name == "2000-01-01-cirkelline-daphne-1w-test-0.5s.json"
    assert len(saved["rounds"][0]["records"]) == N and saved["rounds"][0]["efficiency"] is not None
    summary = json.loads((path.parent / "2000-01-01-cirkelline-daphne-1w-test-0.5s.summary.json").read_text())
    assert "records" not in summary["rounds"][0] and summary["rounds"][0]["runs"] == N

    path.unlink()  # the raw result is not kept (git ignores it): the table comes from the summary
    table = write_report(options.results_dir, "2000-01-01").read_text()
    assert "| cirkelline-daphne-1w-test-0.5s | 5 |" in table
