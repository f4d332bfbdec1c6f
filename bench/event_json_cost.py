"""CPU of encoding a run's events as JSON: Cirkelline's `event_json` against agno's `to_json`, in-process.

    python -m bench.event_json_cost [--runs 200] [--rounds 6]

One delegated run of the product's team against the fake provider (its own process, the
bench's call shape) is recorded event by event; then each round encodes that run's events
`--runs` times with chat.agents.event_json.event_json (what the server does, once per event) and
with agno's `to_json` (compact separators), the two alternating round by round. Both must give
the same bytes (checked first). Prints µs of CPU per run's events for each, per event type too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from . import model_path
from .common import MESSAGE
from .servers import FakeProviderProcess


async def _record() -> list:
    from chat.agents.team import build_cirkelline_team

    team = build_cirkelline_team()
    return [event async for event in team.arun(MESSAGE, stream=True, stream_events=True, user_id="bench",
                                               session_id=f"bench-{time.monotonic()}")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.event_json_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-event-json-") as workdir:
        with FakeProviderProcess(model_path._Profile(), Path(workdir)) as provider:  # type: ignore[arg-type]
            model_path._setup(provider.base_url)
            events = asyncio.run(_record())
    from chat.agents.event_json import event_json

    def agno(event):
        return event.to_json(separators=(",", ":"), indent=None)

    for event in events:
        assert event_json(event) == agno(event), event.event
    ways = {"agno to_json": agno, "event_json": event_json}
    load = os.getloadavg()[0]
    per_run: dict[str, list[float]] = {way: [] for way in ways}
    per_type: dict[str, dict[str, float]] = {way: defaultdict(float) for way in ways}
    for index in range(args.rounds):
        for way in (list(ways) if index % 2 == 0 else list(reversed(ways))):
            encode = ways[way]
            total = 0.0
            for event in events:
                started = time.process_time()
                for _ in range(args.runs):
                    encode(event)
                spent = time.process_time() - started
                total += spent
                per_type[way][type(event).__module__.rsplit(".", 1)[-1] + "." + type(event).__name__] += spent
            per_run[way].append(total / args.runs * 1e6)
    print(f"{len(events)} events per run; load average before {load:.2f} / after {os.getloadavg()[0]:.2f}")
    for way, values in per_run.items():
        print(f"{way}: median {statistics.median(values):.0f} µs per run ({', '.join(f'{v:.0f}' for v in values)})")
    for name in sorted(per_type["agno to_json"], key=lambda n: -per_type["agno to_json"][n]):
        print(f"  {name}: " + ", ".join(f"{way} {per_type[way][name] / args.runs / args.rounds * 1e6:.0f} µs"
                                       for way in ways))


if __name__ == "__main__":
    main()
