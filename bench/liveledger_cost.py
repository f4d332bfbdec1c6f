"""Benchmark: CPU the live ledger adds to a run, measured in-process (not a test).

    .venv/bin/python -m bench.liveledger_cost [--runs 200] [--concurrent 1,10,50,200] [--database-url URL]

A delegated run of the bench workload completes three provider calls (the leader's tool call, the
member's answer, the leader's answer) for two agents. For each call the run task notes the run
(chat.runs.liveledger.note), and within CIRKELLINE_LIVE_LEDGER_SECONDS one `executemany` writes the
calls so far of every noted run to its `running` usage row. Here `--concurrent` runs complete each
call together (so they share each write, as under that load), three times, against real running
rows (SQLite by default, or `--database-url`, e.g. PostgreSQL). Prints microseconds of process CPU
per run (the database server's own CPU is not in it for PostgreSQL; SQLite's is, in-process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime


def _setup(database_url: str) -> None:
    workdir = tempfile.mkdtemp(prefix="cirkelline-liveledger-bench-")
    os.environ.update(DJANGO_SETTINGS_MODULE="cirkelline_site.settings",
                      DATABASE_URL=database_url or f"sqlite:///{workdir}/db.sqlite3", CIRKELLINE_MODEL="scripted",
                      CIRKELLINE_METRICS_DIR=workdir, REDIS_URL="", CIRKELLINE_LIVE_LEDGER_SECONDS="0.01")
    import logging

    import django

    django.setup()
    logging.disable(logging.CRITICAL)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class _Handle:
    """What chat.runs.liveledger reads of a run's handle."""

    def __init__(self, run_id: str):
        from chat.context import RunContext
        from chat.runs.accounting import RunAccount

        self.run_id = run_id
        self.account = RunAccount(run_id=run_id)
        self.ctx = RunContext(run_id=run_id, user_id=None)
        self._finalizing = False


class _Call:
    """A completed call as agno reports it (the fields RunAccount reads)."""

    event = "TeamModelRequestCompleted"

    def __init__(self, agent: str | None, team: str | None):
        self.agent_id, self.team_id = agent, team
        self.model, self.model_provider = "gpt-4.1-mini", "OpenAI"
        self.input_tokens, self.output_tokens, self.total_tokens = 1200, 80, 1280
        self.reasoning_tokens = self.cache_read_tokens = self.cache_write_tokens = 0


async def measure(runs: int, concurrent: int) -> float:
    """Process CPU per run (µs) of three calls noted and written, `concurrent` runs per write."""
    from asgiref.sync import sync_to_async

    from chat.runs import liveledger
    from chat.storage.executor import run_db
    from metrics.models import RunUsage

    prefix = uuid.uuid4().hex[:8]
    ids = [f"{prefix}-{i}" for i in range(runs)]
    now = datetime.now(UTC)
    await sync_to_async(lambda: RunUsage.objects.bulk_create(
        [RunUsage(run_id=i, session_id="s", team_id="cirkelline", status="running", started_at=now) for i in ids]))()
    handles = [_Handle(i) for i in ids]
    calls = [_Call(None, "cirkelline"), _Call("research-specialist", None), _Call(None, "cirkelline")]
    await run_db(lambda: None)  # the database threads started
    began = time.process_time()
    for start in range(0, runs, concurrent):
        group = handles[start:start + concurrent]
        for call in calls:
            for handle in group:
                handle.account.observe(call)
                liveledger.note(handle)
            liveledger._write(asyncio.get_running_loop())  # what the window's timer does (it then finds nothing)
            while liveledger._writing:
                await asyncio.gather(*liveledger._writing)
    spent = time.process_time() - began
    written = await sync_to_async(lambda: RunUsage.objects.filter(run_id__in=ids, model_calls=3).count())()
    assert written == runs, f"{written} of {runs} rows had their 3 calls"
    return spent / runs * 1e6


async def main(args) -> None:
    for concurrent in args.concurrent:
        figures = sorted([await measure(args.runs, concurrent) for _ in range(args.repeat)])
        print(f"runs sharing each write: {concurrent:4d}   CPU per run (3 calls): "
              f"median {figures[len(figures) // 2]:7.0f} µs   (rounds: {', '.join(f'{f:.0f}' for f in figures)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrent", type=lambda v: [int(x) for x in v.split(",")], default=[1, 10, 50, 200])
    parser.add_argument("--database-url", default="")
    parsed = parser.parse_args()
    _setup(parsed.database_url)
    asyncio.run(main(parsed))
