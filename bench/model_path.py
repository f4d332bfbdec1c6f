"""Benchmark: CPU per run of the model path, lean against the SDK, in-process (not a test).

    .venv/bin/python -m bench.model_path [--n 100] [--rounds 7] [--clients sdk,lean]
    .venv/bin/python -m bench.model_path --calls 300 [--rounds 7]
    .venv/bin/python -m bench.model_path --clients lean/httpx,lean/aiohttp   # the HTTP transports

`--calls K`: the provider calls alone, with no network and nothing concurrent. One delegated run
against the fake provider (in-process) records the three requests the team really makes and
the fake's answers to them byte for byte (tests/doubles/fake_openai/replay.py); then each round
makes those three calls K times in a row through a Cirkelline model whose SDK client answers
from the recordings, and prints the CPU of one run's worth of calls (three). Sequential and
network-free, it is far less sensitive to other load on the machine than the team rounds.

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


async def _use(client: str) -> None:
    """Set CIRKELLINE_MODEL_CLIENT (and CIRKELLINE_PROVIDER_HTTP, after a "/") for the next round;
    a new transport needs new shared clients."""
    from django.conf import settings

    from chat.agents.shared_clients import close_loop_clients

    model_client, _, http = client.partition("/")
    settings.CIRKELLINE_MODEL_CLIENT = model_client
    if http and http != settings.CIRKELLINE_PROVIDER_HTTP:
        settings.CIRKELLINE_PROVIDER_HTTP = http
        await close_loop_clients()


async def _round(client: str, n: int) -> float:
    """CPU milliseconds per run of one round of N concurrent runs."""
    await _use(client)
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


def _capture() -> list[tuple[list, list | None, object]]:
    """The three requests of one delegated run, as agno Messages and tools, with the recorded answer to each."""
    from agno.models.message import Message
    from django.conf import settings

    from tests.doubles.fake_openai import FakeProvider
    from tests.doubles.fake_openai.replay import record

    with FakeProvider(answer_words=30, chunk_words=3) as fake:
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        asyncio.run(_one_run(0))
        bodies = [r.body for r in fake.requests]
        calls = []
        for body in bodies:
            recording = record(f"{fake.base_url}/chat/completions", body)
            keep = ("role", "content", "tool_calls", "tool_call_id", "name")
            messages = [Message(**{k: v for k, v in m.items() if k in keep}) for m in body["messages"]]
            calls.append((messages, body.get("tools"), recording))
    return calls


async def _call_rounds(clients: list[str], calls: list, k: int, rounds: int) -> dict[str, list[float]]:
    import httpx2
    from agno.models.message import Message
    from django.conf import settings
    from openai import AsyncOpenAI

    from chat.agents.providers import ModelSpec, build_model
    from tests.doubles.fake_openai.replay import ReplayTransport

    prepared = []
    for messages, tools, recording in calls:
        sdk = AsyncOpenAI(base_url="http://provider.bench/v1", api_key="bench", max_retries=0, timeout=60,
                          http_client=httpx2.AsyncClient(transport=ReplayTransport(recording, keep=False)))
        prepared.append((messages, tools, sdk))

    async def one_run_of_calls() -> None:
        for messages, tools, sdk in prepared:
            model = build_model("leader", ModelSpec("openai-like", "fake"))
            model.get_async_client = lambda sdk=sdk: sdk
            async for _delta in model.ainvoke_stream(messages=list(messages), tools=tools,
                                                     assistant_message=Message(role="assistant")):
                pass

    async def measure(client: str) -> float:
        settings.CIRKELLINE_MODEL_CLIENT = client
        gc.collect()
        before = time.process_time()
        for _ in range(k):
            await one_run_of_calls()
        return (time.process_time() - before) / k * 1000

    for client in clients:
        await measure(client)  # warm-up
    results: dict[str, list[float]] = {client: [] for client in clients}
    for index in range(rounds):
        for client in (clients if index % 2 == 0 else list(reversed(clients))):
            results[client].append(await measure(client))
            print(f"round {index + 1} {client}: {results[client][-1]:.3f} ms per run's 3 calls", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="concurrent runs per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clients", default="sdk,lean",
                        help="CIRKELLINE_MODEL_CLIENT values to compare; with /aiohttp or /httpx, "
                             "CIRKELLINE_PROVIDER_HTTP too (e.g. lean/httpx,lean/aiohttp)")
    parser.add_argument("--calls", type=int, default=0, help="measure K runs' worth of provider calls instead")
    args = parser.parse_args()
    raise_fd_limit()
    clients = [c for c in args.clients.split(",") if c]
    if args.calls:
        _setup("http://127.0.0.1:9/v1")
        load = os.getloadavg()
        results = asyncio.run(_call_rounds(clients, _capture(), args.calls, args.rounds))
        _report(results, clients, f"K={args.calls}", load, "ms per run's 3 calls")
        return
    with tempfile.TemporaryDirectory(prefix="bench-model-path-") as workdir:
        with FakeProviderProcess(_Profile(), Path(workdir)) as provider:  # type: ignore[arg-type]
            _setup(provider.base_url)
            load = os.getloadavg()
            results = asyncio.run(_rounds(clients, args.n, args.rounds))
    _report(results, clients, f"N={args.n}", load, "ms/run")


def _report(results: dict[str, list[float]], clients: list[str], what: str, load: tuple, unit: str) -> None:
    rounds = len(next(iter(results.values())))
    print(f"\n{what}, {rounds} rounds, load average before {load[0]:.2f} / after {os.getloadavg()[0]:.2f}")
    medians = {client: statistics.median(values) for client, values in results.items()}
    for client, values in results.items():
        print(f"{client}: median {medians[client]:.3f} {unit}  ({', '.join(f'{v:.2f}' for v in values)})")
    if len(clients) == 2:
        first, second = clients
        print(f"{second} / {first}: {medians[second] / medians[first]:.3f}")


if __name__ == "__main__":
    main()
