"""Why the run path is async: N team runs with `await team.arun` vs the sync `team.run()`.

    .venv/bin/python -m bench.sync_vs_async --runs 20 --latency 1.0

Each run is the Cirkelline team on the scripted model: the leader delegates to one specialist
and answers, so 3 provider calls of `--latency` seconds each. Scenarios:

- async: `team.arun(stream=True)` for N runs at once on one event loop (what Cirkelline does);
- sync-in-loop: the same N runs calling sync `team.run()` from coroutines on the event loop (the
  anti-pattern the system Cirkelline replaces had: every run blocks the loop for its whole duration);
- to-thread: sync `team.run()` through `asyncio.to_thread` (bounded by the thread pool).

The sync paths exist only here: the product's scripted model refuses sync calls. Nothing here
touches the network or a database. Prints wall time, the slowest event-loop stall and the ratio
to one async run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")


def _setup(latency: float):
    import django

    django.setup()
    from agno.models.response import ModelResponse

    from chat.agents.demo import demo_script
    from chat.agents.providers import ModelSpec
    from chat.agents.scripted import ScriptedModel
    from chat.agents.team import build_cirkelline_team

    @dataclass
    class SyncCapableScripted(ScriptedModel):
        """Bench-only: the scripted model with blocking sync paths (time.sleep = a provider wait)."""

        def invoke(self, messages, assistant_message, *args: Any, tools=None, run_response=None, **kwargs):
            _, turn, _ = self._begin(messages, tools, run_response, stream=False)
            time.sleep(self.latency)
            response = ModelResponse(role="assistant", content=turn.text or None)
            response.tool_calls = self._tool_call_dicts(turn)
            response.response_usage = self._usage(messages, turn)
            return response

        def invoke_stream(self, messages, assistant_message, *args: Any, tools=None, run_response=None, **kwargs):
            yield self.invoke(messages, assistant_message, tools=tools, run_response=run_response)

    def build() -> Any:
        # The product's own team (chat.agents.team), on the sync-capable scripted model, no storage.
        return build_cirkelline_team(
            ModelSpec("scripted", "scripted"), db=None,
            model_factory=lambda label, spec: SyncCapableScripted(label=label, latency=latency, script=demo_script),
        )

    return build


class LoopLag:
    """Largest gap between 10 ms heartbeats: how long the event loop was blocked."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._last = 0.0
        self._task: asyncio.Task | None = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            self.worst = max(self.worst, now - self._last - 0.01)
            self._last = now

    def __enter__(self):
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._task = loop.create_task(self._beat())
        return self

    def __exit__(self, *exc):
        # A beat that is due but could not run yet (the loop was blocked until now) counts too.
        self.worst = max(self.worst, asyncio.get_running_loop().time() - self._last - 0.01)
        self._task.cancel()


async def scenario(name: str, build, runs: int) -> dict:
    message = "Please research the history of Copenhagen"

    async def async_run(i: int) -> str:
        team = build()
        content = ""
        async for event in team.arun(message, stream=True, session_id=f"s{i}"):
            content = getattr(event, "content", content) or content
        return content

    async def sync_in_loop(i: int) -> str:
        return build().run(message, session_id=f"s{i}").content  # blocks the loop

    async def to_thread(i: int) -> str:
        return (await asyncio.to_thread(lambda: build().run(message, session_id=f"s{i}"))).content

    fn = {"async": async_run, "sync-in-loop": sync_in_loop, "to-thread": to_thread}[name]
    loop = asyncio.get_running_loop()
    with LoopLag() as lag:
        start = loop.time()
        results = await asyncio.gather(*(fn(i) for i in range(runs)))
        wall = loop.time() - start
    assert all(results), "every run must produce an answer"
    return {"scenario": name, "runs": runs, "wall_s": round(wall, 2), "worst_loop_stall_s": round(lag.worst, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per provider call")
    parser.add_argument("--scenarios", default="async,sync-in-loop,to-thread")
    args = parser.parse_args()
    build = _setup(args.latency)

    single = await scenario("async", build, 1)
    rows = [dict(single, scenario="async (1 run)")]
    for name in args.scenarios.split(","):
        rows.append(await scenario(name, build, args.runs))
    for row in rows:
        row["x_one_run"] = round(row["wall_s"] / single["wall_s"], 1)
    print(json.dumps(rows, indent=2))
    print(
        "\n| scenario | runs | wall (s) | × one run | worst loop stall (s) |\n|---|---|---|---|---|", file=sys.stderr
    )
    for row in rows:
        print(
            f"| {row['scenario']} | {row['runs']} | {row['wall_s']} | {row['x_one_run']} | "
            f"{row['worst_loop_stall_s']} |",
            file=sys.stderr,
        )


if __name__ == "__main__":
    asyncio.run(main())
