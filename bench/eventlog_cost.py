"""Benchmark: CPU a run's event log adds to sending its events, measured in-process (not a test).

    .venv/bin/python -m bench.eventlog_cost [--runs 300] [--batch 1] [--redis redis://127.0.0.1:6379/0]
                                            [--concurrent 1] [--window 0.25] [--run-seconds 3]

The events of one delegated run of the scripted model (the bench workload's shape: tool call,
member answer, leader answer) are recorded once, then sent again and again the way the server
sends them, batches of `--batch` events at a time (1: a lightly loaded server, where each event is
its own batch; more merge text deltas):

- before: what the SSE transport did per batch before the log (merge the batch's deltas, encode
  each event once with agno's bytes, write the frames);
- log: what it does now (the log's writer merges, numbers and encodes each entry once, appends it
  to the run's log and wakes its reader; the reader cuts the SSE frames from the entries);
- log + Redis (`--redis URL`): the same, and the entries also written to Redis by the sink, as
  the server writes them (the run's record at its start; then one script call per window of
  `--window` seconds carrying every run's new entries, `--concurrent` runs sharing each; the end),
  against a real Redis: the client side's CPU (redis-py building and parsing the commands, the
  socket) is in this process's figure, Redis's own is not.

Prints microseconds of process CPU per run for each, and the log's share of a whole run's server
CPU as docs/PERFORMANCE.md measures it with bench.run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
import uuid


def _setup(redis_url: str) -> None:
    workdir = tempfile.mkdtemp(prefix="cirkelline-eventlog-bench-")
    os.environ.update(DJANGO_SETTINGS_MODULE="cirkelline_site.settings",
                      DATABASE_URL=f"sqlite:///{workdir}/db.sqlite3", CIRKELLINE_MODEL="scripted",
                      CIRKELLINE_METRICS_DIR=workdir, REDIS_URL=redis_url,
                      CIRKELLINE_REDIS_PREFIX=f"bench-eventlog-{uuid.uuid4().hex[:8]}")
    import logging

    import django

    django.setup()
    logging.disable(logging.CRITICAL)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


async def record_run() -> list:
    """The events one delegated run publishes (its terminal one included)."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model

    from chat.runs import RunRequest, start_run

    user = await sync_to_async(lambda: get_user_model().objects.get_or_create(username="bench")[0])()
    handle = await start_run(RunRequest(user_id=user.pk, message="Please research the history of Copenhagen",
                                        streamed=False))
    await handle.wait()
    return list(handle._raw)


def before(events: list, batch: int) -> None:
    from chat.agents.event_json import event_json
    from chat.runs.events import coalesce

    for start in range(0, len(events), batch):
        body = b"".join(f"event: {e.event}\ndata: {event_json(e)}\n\n".encode("utf-8", "replace")
                        for e in coalesce(events[start:start + batch]))
        assert body


class Run:
    """One run's log as the server keeps it, fed batch by batch."""

    def __init__(self, sink):
        from chat.runs.runlog import RunLog

        self.run_id = str(uuid.uuid4())
        self.log = RunLog(self.run_id, {"user_id": 1, "session_id": "s"})
        self.sink = sink
        self.after = -1

    def feed(self, events: list, start: int, batch: int) -> None:
        from chat.api.sse import frames
        from chat.runs.events import coalesce_numbered
        from chat.runs.logentries import encode

        entries = [encode(number, event) for number, event in coalesce_numbered(events[start:start + batch], start)]
        self.log.add(entries)
        if self.sink is not None:
            self.sink.add(self.run_id, entries)
        taken = self.log.since(self.after)  # what the reader takes
        self.after = taken[-1][0]
        assert frames(taken)


async def _flushed(sink) -> None:
    await sink.idle()


async def measure(events: list, args, mode: str) -> float:
    from chat.runs import eventlog_redis

    sink = eventlog_redis.sink() if mode == "redis" else None
    eventlog_redis.FLUSH_SECONDS = 0  # windows are simulated below: no waiting
    for _ in range(max(2, args.runs // 10 // args.concurrent)):  # warm
        await _group(events, args, mode, sink)
    start = time.process_time()
    for _ in range(args.runs // args.concurrent):
        await _group(events, args, mode, sink)
    return (time.process_time() - start) / (args.runs // args.concurrent * args.concurrent) * 1e6


async def _group(events: list, args, mode: str, sink) -> None:
    """`args.concurrent` runs side by side; with Redis, one write per window for all of them, a
    run lasting `args.run_seconds` (so ceil(run_seconds / window) writes at most per run)."""
    batch = args.batch
    if mode == "before":
        for _ in range(args.concurrent):
            before(events, batch)
        return
    runs = [Run(sink) for _ in range(args.concurrent)]
    if sink is not None:
        for run in runs:
            await sink.open(run.run_id, run.log.meta, lifetime=60)
    starts = list(range(0, len(events), batch))
    windows = max(1, math.ceil(args.run_seconds / args.window)) if args.window else len(starts)
    per_window = max(1, math.ceil(len(starts) / windows))
    for first in range(0, len(starts), per_window):
        for run in runs:
            for start in starts[first:first + per_window]:
                run.feed(events, start, batch)
        if sink is not None:
            await _flushed(sink)
    if sink is not None:
        for run in runs:
            sink.end(run.run_id, run.log.meta, {"status": "completed"})
        await _flushed(sink)


async def main_async(args) -> None:
    events = await record_run()
    print(f"{len(events)} events per run, batches of {args.batch}, {args.concurrent} runs at once, "
          f"Redis writes every {args.window} s of a {args.run_seconds} s run")
    figures = {"before": await measure(events, args, "before"), "log": await measure(events, args, "log")}
    if args.redis:
        figures["log + Redis"] = await measure(events, args, "redis")
    for name, value in figures.items():
        extra = "" if name == "before" else f" (+{value - figures['before']:.0f} us)"
        print(f"{name}: {value:.0f} us CPU per run{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--redis", default="", help="a Redis URL: also measure the log written to Redis")
    parser.add_argument("--concurrent", type=int, default=1, help="runs whose entries share each Redis write")
    parser.add_argument("--window", type=float, default=0.25,
                        help="seconds between Redis writes (the sink's FLUSH_SECONDS; 0: one write per batch)")
    parser.add_argument("--run-seconds", type=float, default=3.0, help="how long a run streams")
    args = parser.parse_args()
    _setup(args.redis)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
