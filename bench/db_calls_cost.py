"""CPU of the run path's per-run database calls, each as a prepared statement and as the ORM query
it replaces (the reference the tests compare it with), in-process.

    .venv/bin/python -m bench.db_calls_cost [--calls 2000] [--rounds 5] [--database-url URL] [--only NAME,...]

On a fresh database (SQLite by default, as `make run`; or `--database-url`, e.g. PostgreSQL),
migrated, with a user who has no budget, one whose budget has a month of runs, and a session with
one answer. Each call is made `--calls` times per round, the two ways in alternating rounds; prints
microseconds of process CPU per call (the database server's own CPU is not in it for PostgreSQL;
SQLite's is, in-process) per round and the medians, with the load average.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .common import setup_django_bench


def _setup(database_url: str) -> None:
    setup_django_bench("cirkelline-db-calls-bench-", database_url)


def _calls() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """Each measured call: (the ORM query, the prepared statement), with their arguments bound."""
    from django.contrib.auth import get_user_model

    from chat.models import ChatRun, ChatSession
    from chat.storage import prepared
    from metrics import pricing, recording, statements
    from metrics.models import Budget, PriceRule, RunUsage

    users = get_user_model().objects
    stamp = time.time_ns()
    plain = users.create_user(f"bench-plain-{stamp}")
    budgeted = users.create_user(f"bench-budget-{stamp}")
    now = datetime.now(UTC)
    since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    Budget.objects.create(user=budgeted, monthly_limit=Decimal("100"))
    RunUsage.objects.bulk_create(
        [RunUsage(run_id=f"bench-{stamp}-{i}", user=budgeted, session_id="s", team_id="cirkelline", model="m",
                  status="completed", started_at=max(since, now - timedelta(minutes=i)), cost=Decimal("0.00012345"),
                  pricing="priced" if i % 3 else "unpriced", unpriced_tokens=0 if i % 3 else 100)
         for i in range(30)])
    spend = Budget.objects
    session = ChatSession.objects.create(session_id=f"bench-{stamp}", user=plain, session_name="First message")
    ChatRun.objects.create(run_id=f"bench-{stamp}-run", session=session, user=plain, run_type="team",
                           status="COMPLETED")
    sessions, sid = ChatSession.objects, session.session_id
    ended = f"bench-{stamp}-ended"
    recording.record_running({"run_id": ended, "user_id": plain.pk, "username": plain.username, "session_id": sid,
                              "team_id": "cirkelline", "model": "m", "started_at": now, "worker": "bench"})
    ids = itertools.count()

    def running():
        return RunUsage(run_id=f"bench-{stamp}-new-{next(ids)}", user_id=plain.pk, account_id=plain.pk, username="u",
                        session_id=sid, team_id="cirkelline", model="m", started_at=now, worker="bench",
                        status="running", pricing="unpriced")

    naming_ledger = [{"agent": "naming", "model": "m", "provider": "fake", "calls": 1, "estimated_tokens": 0,
                      "tokens": {"input_tokens": 120, "output_tokens": 6, "total_tokens": 126}}]

    def naming():
        return {"run_id": f"bench-{stamp}-naming-{next(ids)}", "user_id": plain.pk, "username": plain.username,
                "session_id": sid, "request_id": "", "team_id": "cirkelline", "kind": "naming", "model": "m",
                "status": "completed", "error_type": "", "error_message": "", "input_tokens": 120,
                "output_tokens": 6, "total_tokens": 126, "model_calls": 1, "streamed": False, "started_at": now,
                "finished_at": now, "duration_ms": 300}

    final = {"session_id": sid, "request_id": "", "team_id": "cirkelline", "kind": "chat", "model": "m",
             "status": "completed", "error_type": "", "error_message": "", "input_tokens": 1200, "output_tokens": 80,
             "total_tokens": 1280, "reasoning_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
             "estimated_tokens": 0, "model_calls": 3, "member_runs": 1, "delegations": 1, "retries": 0,
             "backoff_seconds": 0.0, "streamed": True, "deep_research": False, "started_at": now, "finished_at": now,
             "duration_ms": 3000, "ttft_ms": 900, "cost": Decimal("0.00123400"), "pricing": "priced",
             "unpriced_tokens": 0, "live_ledger": None}
    # The rename finds nothing to rename after the first call (named_by is then `model`), as the
    # naming call's UPDATE does for a session its user renamed: the same statement either way.
    return {
        "with_spend, no budget": (lambda: spend.with_spend_orm(plain.pk, since, now),
                                  lambda: spend.with_spend(plain.pk, since, now)),
        "with_spend, a budget and 30 runs": (lambda: spend.with_spend_orm(budgeted.pk, since, now),
                                             lambda: spend.with_spend(budgeted.pk, since, now)),
        "awaiting_name": (lambda: sessions.awaiting_name(plain.pk, sid), lambda: prepared.awaiting_name(plain.pk, sid)),
        "name_by_model": (lambda: sessions.name_by_model(plain.pk, sid, "A title"),
                          lambda: prepared.name_by_model(plain.pk, sid, "A title")),
        "the token's user": (lambda: prepared.user_for_token_orm(plain.pk), lambda: prepared.user_for_token(plain.pk)),
        # The final write's UPDATE of the run's running row, with the fields a run's write sets (the
        # row is no longer running after the first call: the same statement, matching nothing).
        "end_running": (lambda: RunUsage.objects.filter(run_id=ended, status="running").update(**final),
                        lambda: statements.end_running(ended, final)),
        "has_usage_row": (lambda: RunUsage.objects.filter(run_id=ended).exists(),
                          lambda: statements.has_usage_row(ended)),
        # A new row per call, either way: a running usage row as a run's admission inserts it.
        "insert a usage row": (lambda: len(RunUsage.objects.bulk_create([running()])),
                               lambda: statements.insert_rows([running()]) or 1),
        # The final write's read of the price rules in force: a provider with no rule (the
        # benchmark's fake provider) and one with the seeded price list's rules.
        **{f"rules_in_force, {label}": (
            lambda names=names: list(PriceRule.objects.in_force(now).filter(provider__in=names)),
            lambda names=names: pricing.rules_in_force(now, names))
           for label, names in (("no rule", ["fake"]), ("openai's rules", ["openai"]))},
        # A session's naming call's usage write (a new row and its ledger per call): the final
        # write's record_run, which first tries the running row's UPDATE, against record_ended.
        "naming call's usage write (record_run -> record_ended)": (
            lambda: recording.record_run(naming(), naming_ledger),
            lambda: recording.record_ended(naming(), naming_ledger)),
        "billed_to": (lambda: users.filter(pk=plain.pk).values_list("username", flat=True).first(),
                      lambda: recording.billed_to({"user_id": plain.pk})["username"]),
    }


def _measure(call: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.db_calls_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--only", default="", help="comma-separated names of the calls to measure")
    args = parser.parse_args(argv)
    _setup(args.database_url)
    from django.db import connection

    calls = _calls()
    if args.only:
        calls = {name: pair for name, pair in calls.items() if any(part in name for part in args.only.split(","))}
    load = os.getloadavg()
    print(f"{connection.vendor}, {args.calls} calls per round, {args.rounds} alternating rounds")
    for name, (orm, prepared) in calls.items():
        orm()  # warmed up (and a rename done: then both find nothing left to rename)
        assert orm() == prepared(), name
        per_call: dict[str, list[float]] = {"orm": [], "prepared": []}
        for index in range(args.rounds):
            for way in ("orm", "prepared") if index % 2 == 0 else ("prepared", "orm"):
                per_call[way].append(_measure(orm if way == "orm" else prepared, args.calls))
        medians = {way: statistics.median(values) for way, values in per_call.items()}
        print(f"{name}: orm {medians['orm']:.1f} -> prepared {medians['prepared']:.1f} µs per call "
              f"(orm {min(per_call['orm']):.0f}-{max(per_call['orm']):.0f}, "
              f"prepared {min(per_call['prepared']):.0f}-{max(per_call['prepared']):.0f})", flush=True)
    print(f"load average before {load[0]:.2f} / after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
