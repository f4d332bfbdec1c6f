"""Benchmark: CPU per run of the model path, lean against the SDK, in-process (not a test).

    .venv/bin/python -m bench.model_path [--n 100] [--rounds 7] [--clients sdk,lean]

The product's own team (`chat.agents.team.build_cirkelline_team`: Cirkelline's models, retry layer
and overrides; no storage, no HTTP server, no run service) runs N concurrent delegated runs
(`team.arun(stream=True, stream_events=True)`: 3 streamed provider calls each) against the fake
provider in its own process, once per CIRKELLINE_MODEL_CLIENT value per round, the values
alternating round by round so that load from other work on the machine falls on each alike. It
prints the process CPU per run of every round, the median per value and the ratio, with the load
average. A fresh team is built per run, as the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

from .common import MESSAGE, raise_fd_limit
from .servers import FakeProviderProcess

# Calls short enough for quick rounds, paced like a provider (deltas arrive one by one).
PROVIDER_ARGS = ["--ttft", "0.2", "--tokens-per-second", "50", "--answer-words", "30", "--chunk-words", "3"]


class _Profile:
    """The fake provider's knobs in the shape FakeProviderProcess takes."""

    def provider_args(self) -> list[str]:
        return PROVIDER_ARGS


def _setup(base_url: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    os.environ.setdefault("CIRKELLINE_TELEMETRY", "false")
    os.environ["CIRKELLINE_MODEL"] = "openai-like:fake"
    os.environ["CIRKELLINE_MODEL_BASE_URL"] = base_url
    os.environ["AGNO_TELEMETRY"] = "false"
    import django

    django.setup()
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("agno").setLevel(logging.ERROR)  # "no database assigned" on every run


async def _one_run(i: int) -> int:
    from chat.agents.team import build_cirkelline_team

    team = build_cirkelline_team()
    events = 0
    async for _event in team.arun(MESSAGE, stream=True, stream_events=True, user_id=f"bench-{i}",
                                  session_id=f"bench-{i}-{time.monotonic()}"):
        events += 1
    return events


async def _round(client: str, n: int) -> float:
    """CPU milliseconds per run of one round of N concurrent runs."""
    from django.conf import settings

    settings.CIRKELLINE_MODEL_CLIENT = client
    gc.collect()
    before = time.process_time()
    counts = await asyncio.gather(*(_one_run(i) for i in range(n)))
    cpu = time.process_time() - before
    if min(counts) < 20:
        raise RuntimeError(f"a run streamed only {min(counts)} events: is the provider answering?")
    return cpu / n * 1000


async def _rounds(clients: list[str], n: int, rounds: int) -> dict[str, list[float]]:
    for client in clients:  # warm-up: imports, shared clients, connection pools
        await _round(client, min(n, 20))
    results: dict[str, list[float]] = {client: [] for client in clients}
    for index in range(rounds):
        order = clients if index % 2 == 0 else list(reversed(clients))
        for client in order:
            results[client].append(await _round(client, n))
            print(f"round {index + 1} {client}: {results[client][-1]:.2f} ms/run", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="concurrent runs per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clients", default="sdk,lean", help="CIRKELLINE_MODEL_CLIENT values to compare")
    args = parser.parse_args()
    raise_fd_limit()
    clients = [c for c in args.clients.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="bench-model-path-") as workdir:
        with FakeProviderProcess(_Profile(), Path(workdir)) as provider:  # type: ignore[arg-type]
            _setup(provider.base_url)
            load = os.getloadavg()
            results = asyncio.run(_rounds(clients, args.n, args.rounds))
    print(f"\nN={args.n}, {args.rounds} rounds, load average before {load[0]:.2f} / after {os.getloadavg()[0]:.2f}")
    medians = {client: statistics.median(values) for client, values in results.items()}
    for client, values in results.items():
        print(f"{client}: median {medians[client]:.2f} ms/run  ({', '.join(f'{v:.1f}' for v in values)})")
    if len(clients) == 2:
        first, second = clients
        print(f"{second} / {first}: {medians[second] / medians[first]:.3f}")


if __name__ == "__main__":
    main()
