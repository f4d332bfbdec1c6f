"""Benchmark: the staff usage report over 100 000 usage rows on PostgreSQL or SQLite (not a test).

    .venv/bin/python -m bench.metrics_report [--rows 100000] [--repeat 5]
        [--database-url postgres://postgres@127.0.0.1:5432/cirkelline_bench_metrics | sqlite:///var/bench-metrics.sqlite3]

Creates the database if it is missing, migrates it, replaces its usage rows with `--rows`
synthetic ones (30 days, 200 users, 5 models, every ending, some unpriced, ~2 % of runs with a
delegation failure), then renders each report page `--repeat` times in-process through
Django's test client as a staff user and prints the median and best wall time per page.
Results go to docs/PERFORMANCE.md by hand; nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cirkelline_bench_metrics"
MODELS = ["google:gemini-2.5-flash", "google:gemini-2.5-pro", "openai:gpt-4.1-mini", "anthropic:claude-sonnet-4-5",
          "openai-like:local"]
STATUSES = ["completed"] * 90 + ["error"] * 4 + ["rate_limited"] * 2 + ["timed_out"] * 2 + ["cancelled"] * 2


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fill(rows: int, end: datetime) -> None:
    from django.contrib.auth import get_user_model

    from metrics.models import DelegationFailure, ModelCall, RunUsage

    User = get_user_model()
    ModelCall.objects.all().delete()
    RunUsage.objects.all().delete()
    DelegationFailure.objects.all().delete()
    users = [User.objects.get_or_create(username=f"bench-user-{i}")[0] for i in range(200)]
    rng = random.Random(42)
    batch, failures = [], []
    for i in range(rows):
        started = end - timedelta(seconds=rng.uniform(0, 30 * 86400))
        model = rng.choice(MODELS)
        unpriced = model == "openai-like:local"
        inp, out = rng.randint(300, 6000), rng.randint(20, 900)
        batch.append(RunUsage(
            run_id=f"bench-{i}", user=rng.choice(users), session_id=f"s-{i % 5000}", team_id="cirkelline",
            model=model, status=rng.choice(STATUSES), started_at=started, finished_at=started,
            duration_ms=rng.randint(400, 20000), ttft_ms=rng.choice([None, rng.randint(150, 4000)]),
            input_tokens=inp, output_tokens=out, total_tokens=inp + out,
            cost=None if unpriced else Decimal(inp * 3 + out * 15) / Decimal(10**6),
            pricing="unpriced" if unpriced else "priced", unpriced_tokens=inp + out if unpriced else 0,
            delegations=rng.choice([0, 0, 1, 1, 2])))
        if rng.random() < 0.02:
            failures.append(DelegationFailure(run_id=f"bench-{i}", model=model, created_at=started,
                                              kind=rng.choice(["announced_not_executed", "member_error",
                                                               "member_stalled", "member_empty_result"]),
                                              member=rng.choice(["research-specialist", "audio-specialist"])))
        if len(batch) == 5000:
            RunUsage.objects.bulk_create(batch)
            batch = []
    RunUsage.objects.bulk_create(batch)
    DelegationFailure.objects.bulk_create(failures, ignore_conflicts=True)
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum would do after such a load: fresh statistics
        for model in (RunUsage, DelegationFailure):
            cursor.execute(f"{'VACUUM ' if connection.vendor == 'postgresql' else ''}ANALYZE {model._meta.db_table}")


def time_pages(repeat: int, end: datetime) -> list[tuple[str, float, float]]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True,
                                                                                        "is_superuser": True})
    client = Client()
    client.force_login(staff)
    period = {"start": (end - timedelta(days=29)).date().isoformat(), "end": end.date().isoformat()}
    usage = reverse("admin:metrics_runusage_report")
    pages = [
        ("usage report, by day (30 bars)", usage, {**period, "group": "day"}),
        ("usage report, by user (200 rows)", usage, {**period, "group": "user"}),
        ("usage report, by model", usage, {**period, "group": "model"}),
        ("usage report, CSV by user", usage, {**period, "group": "user", "format": "csv"}),
        ("delegation failure report", reverse("admin:metrics_delegationfailure_report"), period),
        ("RunUsage change list (with totals)", reverse("admin:metrics_runusage_changelist"), {}),
    ]
    results = []
    for label, url, params in pages:
        client.get(url, params)  # warm: connection, templates, URL resolver
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            response = client.get(url, params)
            times.append(time.perf_counter() - began)
            assert response.status_code == 200, (label, response.status_code)
        results.append((label, statistics.median(times), min(times)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_METRICS_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args(argv)
    if args.database_url.startswith("postgres"):
        ensure_database(args.database_url)
    elif not args.database_url.startswith("sqlite"):
        parser.error("--database-url must be postgres://... or sqlite:///...")
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    end = datetime.now(UTC).replace(microsecond=0)
    began = time.perf_counter()
    fill(args.rows, end)
    print(f"filled {args.rows} usage rows in {time.perf_counter() - began:.1f} s")
    print(f"| page ({args.rows} rows, 30 days) | median | best |\n|---|---|---|")
    for label, median, best in time_pages(args.repeat, end):
        print(f"| {label} | {median * 1000:.0f} ms | {best * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
