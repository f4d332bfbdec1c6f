"""CPU of the delegation tool agno builds every run, its argument validator shared or per run, in-process.

    python -m bench.delegation_tool --tools 2000 --runs 200 --rounds 6

agno builds `delegate_task_to_member` as a new closure in every team run and wraps it in pydantic's
`validate_call`; for teams on Cirkelline's models the validator is built once per process and
each run's wrapper validates with it (chat/agents/delegation_tool.py `_arguments_validator`).
"off" is the same code with that sharing taken out (the rest of `SharedDerivations` stays on),
"on" is the product; the two alternate round by round so that other load falls on each alike.

- `--tools K`: the tool alone, K times per round: agno's `_get_delegate_task_function` for one
  team of the product's (what a run calls once, as `_determine_tools_for_model` does), then the
  tool's entrypoint as agno's tool call reaches it (`Function._wrap_callable`, as
  process_entrypoint). No model, no run.
- `--runs N`: N delegated runs of the product's team on the scripted model (no latency, no
  network, no storage), a fresh team per run as the server builds one, one after another.

Prints the CPU per tool (µs) and per run (ms) of every round and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

from .common import MESSAGE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delegation_tool", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    os.environ.setdefault("CIRKELLINE_TELEMETRY", "false")
    os.environ["AGNO_TELEMETRY"] = "false"
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)  # agno's "no database assigned" on every run (agno resets its levels)
    load = os.getloadavg()
    result = asyncio.run(_rounds(args.tools, args.runs, args.rounds))
    result["load_average"] = {"before": load[0], "after": os.getloadavg()[0]}
    print(json.dumps(result, indent=1))


def _off(own, function, key) -> None:
    """`delegation_tool._share_validator` taken out: each closure's wrapper is agno's, its own validator."""


async def _rounds(tools: int, runs: int, rounds: int) -> dict:
    from agno.team._default_tools import _get_delegate_task_function
    from agno.tools.function import Function
    from django.conf import settings

    from chat.agents import delegation_tool
    from chat.agents.providers import ModelSpec
    from chat.agents.team import build_cirkelline_team

    share = delegation_tool._share_validator
    settings.CIRKELLINE_SCRIPTED_LATENCY = 0.0
    spec = ModelSpec("scripted", "")
    team = build_cirkelline_team(spec)
    per_tool: dict[str, list[float]] = {"off": [], "on": []}
    per_run: dict[str, list[float]] = {"off": [], "on": []}
    for on in (False, True):  # warm both: imports, the shared derivations, the first validator
        delegation_tool._share_validator = share if on else _off
        Function._wrap_callable(_get_delegate_task_function(team, None, None, None, {}, async_mode=True).entrypoint)
        [e async for e in build_cirkelline_team(spec).arun(MESSAGE, stream=True, stream_events=True)]
    for index in range(rounds):
        for name in ("off", "on") if index % 2 == 0 else ("on", "off"):
            delegation_tool._share_validator = share if name == "on" else _off
            if tools:
                started = time.process_time()
                for _ in range(tools):
                    tool = _get_delegate_task_function(team, None, None, None, {}, async_mode=True)
                    Function._wrap_callable(tool.entrypoint)
                per_tool[name].append(round((time.process_time() - started) / tools * 1e6, 1))
            if runs:
                started = time.process_time()
                for _ in range(runs):
                    run_team = build_cirkelline_team(spec)
                    events = [e async for e in run_team.arun(MESSAGE, stream=True, stream_events=True)]
                    assert events[-1].event == "TeamRunCompleted", events[-1].event
                per_run[name].append(round((time.process_time() - started) / runs * 1e3, 3))
    delegation_tool._share_validator = share
    result: dict = {}
    if tools:
        result["us_per_tool"] = per_tool
        result["median_us_per_tool"] = {k: round(statistics.median(v), 1) for k, v in per_tool.items()}
    if runs:
        result["ms_per_run"] = per_run
        result["median_ms_per_run"] = {k: round(statistics.median(v), 3) for k, v in per_run.items()}
    return result


if __name__ == "__main__":
    main()
