"""Benchmark: CPU the SSE heartbeat adds to streaming a run, measured in-process (not a test).

    .venv/bin/python -m bench.heartbeat_cost [--runs 300] [--concurrent 50] [--quiet-intervals 40]

The events of one delegated run of the scripted model are recorded once; then `--concurrent` runs
at a time replay them into their event logs, one event per loop turn (a lightly loaded server:
every event its own batch), each log read by a reader that cuts the SSE frames, as the run's
response does:

- off: the reader follows the log without a heartbeat (`follow()`);
- on: with the production interval (`follow(idle=15)`): the per-batch cost of noting the time,
  plus its timer (set once per reader, checked again once per interval);
- quiet: one reader per run kept waiting through `--quiet-intervals` intervals of silence with a
  tiny interval, so that every interval sends a heartbeat: the cost of one heartbeat (timer,
  wake-up, the 8-byte comment) per interval of silence.

Prints microseconds of process CPU per run (and per heartbeat), and the share of a whole run's
server CPU (~25-30 ms, docs/PERFORMANCE.md) they are.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.eventlog_cost import _setup, record_run

RUN_CPU_MS = 25.0  # a delegated run's server CPU, the low end of docs/PERFORMANCE.md's rounds


async def _reader(log, idle: float, counts: list[int]) -> None:
    from chat.api.sse import PING, frames

    async for batch in log.follow(idle=idle):
        assert frames(batch) if batch else PING
        counts[0] += 0 if batch else 1


async def _group(events: list, concurrent: int, idle: float) -> None:
    from chat.runs.logentries import encode
    from chat.runs.runlog import RunLog

    logs = [RunLog(f"run-{i}", {"user_id": 1, "session_id": "s"}) for i in range(concurrent)]
    counts = [0]
    readers = [asyncio.ensure_future(_reader(log, idle, counts)) for log in logs]
    await asyncio.sleep(0)
    entries = [encode(number, event) for number, event in enumerate(events)]
    for entry in entries:
        for log in logs:
            log.add([entry])
        await asyncio.sleep(0)  # the readers take it in: one batch per event
    for log in logs:
        log.end({})
    await asyncio.gather(*readers)


async def per_run(events: list, args, idle: float) -> float:
    for _ in range(3):  # warm
        await _group(events, args.concurrent, idle)
    groups = max(1, args.runs // args.concurrent)
    start = time.process_time()
    for _ in range(groups):
        await _group(events, args.concurrent, idle)
    return (time.process_time() - start) / (groups * args.concurrent) * 1e6


async def per_heartbeat(args) -> tuple[float, int]:
    """CPU per heartbeat: readers waiting on silent logs with a 2 ms interval, minus the same wait
    without heartbeats."""
    from chat.runs.runlog import RunLog

    interval = 0.002
    seconds = interval * args.quiet_intervals

    async def quiet(idle: float) -> tuple[float, int]:
        logs = [RunLog(f"q-{i}", {"user_id": 1, "session_id": "s"}) for i in range(args.concurrent)]
        counts = [0]
        readers = [asyncio.ensure_future(_reader(log, idle, counts)) for log in logs]
        start = time.process_time()
        await asyncio.sleep(seconds)
        for log in logs:
            log.end({})
        await asyncio.gather(*readers)
        return time.process_time() - start, counts[0]

    await quiet(interval)  # warm
    with_pings, pings = await quiet(interval)
    without, _ = await quiet(0.0)
    return (with_pings - without) / max(1, pings) * 1e6, pings


async def main_async(args) -> None:
    events = await record_run()
    print(f"{len(events)} events per run, one per batch, {args.concurrent} runs at once")
    rounds = {"off": [], "on": []}
    for _ in range(args.rounds):  # alternated: the machine's noise falls on both
        rounds["off"].append(await per_run(events, args, 0.0))
        rounds["on"].append(await per_run(events, args, 15.0))
    off, on = (sorted(values)[len(values) // 2] for values in (rounds["off"], rounds["on"]))
    print(f"reader, heartbeat off: {off:.1f} us CPU per run (rounds: {', '.join(f'{v:.1f}' for v in rounds['off'])})")
    print(f"reader, heartbeat on:  {on:.1f} us CPU per run (rounds: {', '.join(f'{v:.1f}' for v in rounds['on'])})")
    print(f"heartbeat while events flow: {on - off:+.1f} us per run = {(on - off) / (RUN_CPU_MS * 10):+.3f} % "
          f"of a {RUN_CPU_MS:.0f} ms run")
    cost, pings = await per_heartbeat(args)
    print(f"one heartbeat in silence: {cost:.1f} us CPU ({pings} sent); a run silent for 10 minutes "
          f"(40 heartbeats at 15 s): {40 * cost:.0f} us = {40 * cost / (RUN_CPU_MS * 10):.2f} % of a run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quiet-intervals", type=int, default=40)
    args = parser.parse_args()
    _setup("")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
