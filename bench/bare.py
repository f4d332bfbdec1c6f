"""Bare agno in-process: the floor the serving stacks are compared with.

    python -m bench.bare --provider-url http://127.0.0.1:9100/v1 --ns 1,10,100 --profile 1s --out bare.json

The Cirkelline team (``bench.teams.build_team``: stock ``OpenAILike`` models, no storage, no
HTTP server) runs N concurrent ``team.arun(stream=True, stream_events=True)`` per round on
one event loop, against the fake provider in another process. Per round it measures what
the HTTP scenarios measure (completion, TTFT, events, errors, event-loop lag, RSS) and the
process's CPU seconds, which are the agno cost of a run with nothing around it.

By default every run uses one shared team object (agno keeps per-run state off the team),
which is the cheapest possible setup; ``--copy`` gives every run its own
``team.deep_copy()`` as both Cirkelline and AgentOS do per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .common import MESSAGE, TERMINAL_EVENTS, percentile, profile_named, raise_fd_limit, rounded
from .loadgen import RunObserver, RunRecord
from .procstats import Sampler, rss_bytes


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Heartbeat:
    """Event-loop lag as bench.loopstats measures it: how late a 10 ms sleep wakes up."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.010)
            self.samples.append(max(0.0, loop.time() - before - 0.010))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


async def _one_run(team: Any, i: int, load_start: float, copy: bool, run_timeout: float) -> RunRecord:
    loop = asyncio.get_running_loop()
    started = loop.time()
    observer = RunObserver(RunRecord(user=i, start=started - load_start, status=200), started)
    try:
        async with asyncio.timeout(run_timeout):
            runner = team.deep_copy() if copy else team
            async for event in runner.arun(MESSAGE, stream=True, stream_events=True, user_id=f"bench-user-{i}",
                                           session_id=f"bench-{i}-{started}"):
                name = event.event
                content = getattr(event, "content", None)
                error = str(content) if name in TERMINAL_EVENTS and name != "TeamRunCompleted" else None
                observer.observe(name, content, loop.time(), error)
    except TimeoutError:
        observer.record.error = f"timed out after {run_timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - recorded as the run's error
        observer.record.error = f"{type(exc).__name__}: {exc}"[:300]
    return observer.finish(loop.time())


async def _round(team: Any, n: int, copy: bool, run_timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    gc.collect()
    pid = os.getpid()
    rss_before = rss_bytes(pid)
    heartbeat = Heartbeat()
    heartbeat.start()
    cpu_before = _cpu()
    with Sampler(lambda: [pid]) as sampler:
        start = loop.time()
        records = await asyncio.gather(*(_one_run(team, i, start, copy, run_timeout) for i in range(n)))
        wall = loop.time() - start
        cpu = _cpu() - cpu_before
    await heartbeat.stop()
    gc.collect()
    lag = sorted(heartbeat.samples)
    return {
        "n": n,
        "wall_s": wall,
        "server_cpu_s": cpu,
        "rss_before": rss_before,
        "rss_peak": sampler.rss_peak,
        "rss_after": rss_bytes(pid),
        "loop_lag_p50_ms": rounded((percentile(lag, 0.5) or 0) * 1000, 3),
        "loop_lag_p99_ms": rounded((percentile(lag, 0.99) or 0) * 1000, 3),
        "loop_lag_max_ms": rounded((lag[-1] if lag else 0) * 1000, 3),
        "records": [asdict(r) for r in records],
    }


async def run_rounds(provider_url: str, ns: list[int], *, copy: bool, run_timeout: float, warmup: int) -> dict:
    from .teams import build_team

    team = build_team(provider_url)
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # as a stock agno process: no per-request INFO logs
    rounds = []
    if warmup:
        await _round(team, warmup, copy, run_timeout)
    for n in ns:
        rounds.append(await _round(team, n, copy, run_timeout))
    return {"rounds": rounds, "copy": copy}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provider-url", required=True, help="the fake provider's /v1 URL")
    parser.add_argument("--ns", default="1,10,50,100,200,500,1000", help="comma-separated concurrency levels")
    parser.add_argument("--profile", default="1s", help="only recorded in the output (the provider sets timing)")
    parser.add_argument("--copy", action="store_true", help="team.deep_copy() per run, as the servers do")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--warmup", type=int, default=3, help="runs before the first measured round")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    raise_fd_limit()
    os.environ.setdefault("AGNO_TELEMETRY", "false")
    ns = [int(x) for x in args.ns.split(",") if x]
    started = time.time()
    rounds = run_rounds(args.provider_url, ns, copy=args.copy, run_timeout=args.timeout, warmup=args.warmup)
    result = asyncio.run(rounds)
    result.update({"started_at": started, "profile": profile_named(args.profile).describe()})
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
