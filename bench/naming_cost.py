"""CPU of one naming call (a session's non-streamed title call) on the lean path and the SDK's, in-process.

    python -m bench.naming_cost --calls 300 --rounds 6

The model chat.agents.providers builds for the naming label, its SDK client answering from a
replayed recording (tests/doubles/fake_openai/replay: no network), a two-message prompt of about
the size chat.agents.titles sends; `CIRKELLINE_MODEL_CLIENT` sdk and lean in alternating rounds.
Prints the CPU per call (building the model included) per round and the medians.

`--title`: the whole title call instead, on the lean path: chat.agents.naming.ask_for_title (one
`Model.aresponse`) against an agno Agent with the same instructions asked the same (what
ask_for_title did before; the provider is sent the same request, tests/agents/test_naming_call.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.naming_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--title", action="store_true", help="the title call with and without an agno Agent")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    import django

    django.setup()
    print(json.dumps(asyncio.run((_title_rounds if args.title else _rounds)(args.calls, args.rounds)), indent=1))


def _replayed_sdk() -> object:
    """An SDK client whose every answer is the same replayed title answer (no network)."""
    import httpx2
    from django.conf import settings
    from openai import AsyncOpenAI

    from tests.doubles.fake_openai.replay import Recording, ReplayTransport

    settings.CIRKELLINE_MODEL_BASE_URL = "http://127.0.0.1:9/v1"
    answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": "fake",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "Copenhagen history questions"}}],
              "usage": {"prompt_tokens": 120, "completion_tokens": 4, "total_tokens": 124}}
    recording = Recording(200, [("content-type", "application/json")], [json.dumps(answer).encode()])
    return AsyncOpenAI(base_url="http://provider.test/v1", api_key="k", max_retries=0, timeout=30,
                       http_client=httpx2.AsyncClient(transport=ReplayTransport(recording, keep=False)))


async def _rounds(calls: int, rounds: int) -> dict:
    from agno.models.message import Message
    from django.conf import settings

    from chat.agents.providers import ModelSpec, build_model

    sdk = _replayed_sdk()
    prompt = [Message(role="system", content="Name the chat in at most 8 words. " * 5),
              Message(role="user", content="First message: " + "hello " * 40 + "\nAnswer: " + "words " * 60)]
    per_call: dict[str, list[float]] = {"sdk": [], "lean": []}
    for index in range(rounds):
        for path in ("sdk", "lean") if index % 2 == 0 else ("lean", "sdk"):
            settings.CIRKELLINE_MODEL_CLIENT = path
            started = time.process_time()
            for _ in range(calls):
                model = build_model("naming", ModelSpec("openai-like", "fake"))
                model.get_async_client = lambda: sdk
                await model.ainvoke(messages=list(prompt), assistant_message=Message(role="assistant"))
            per_call[path].append(round((time.process_time() - started) / calls * 1e6, 1))
    return {"us_per_call": per_call, "median_us": {k: statistics.median(v) for k, v in per_call.items()}}


async def _title_rounds(calls: int, rounds: int) -> dict:
    from agno.agent import Agent

    from chat.agents import naming
    from chat.agents.providers import ModelSpec
    from chat.agents.titles import INSTRUCTIONS, NAMING_LABEL, naming_prompt

    sdk = _replayed_sdk()
    build = naming.build_model

    def replayed(label, spec):
        model = build(label, spec)
        model.get_async_client = lambda: sdk
        return model

    naming.build_model = replayed
    spec, first, reply = ModelSpec("openai-like", "fake"), "hello " * 40, "words " * 60

    async def by_model() -> None:
        await naming.ask_for_title(first_message=first, answer=reply, run_id="r1", user_id=1, spec=spec)

    async def by_agent() -> None:
        agent = Agent(id=NAMING_LABEL, name="Chat naming", model=replayed(NAMING_LABEL, spec),
                      instructions=list(INSTRUCTIONS), markdown=False, telemetry=False, retries=0)
        await agent.arun(input=naming_prompt(first, reply), stream=False, run_id="r1", user_id="1")

    ways = {"agent": by_agent, "model": by_model}
    per_call: dict[str, list[float]] = {way: [] for way in ways}
    for index in range(rounds):
        for way in (list(ways) if index % 2 == 0 else list(reversed(ways))):
            started = time.process_time()
            for _ in range(calls):
                await ways[way]()
            per_call[way].append(round((time.process_time() - started) / calls * 1e6, 1))
    return {"us_per_call": per_call, "median_us": {k: statistics.median(v) for k, v in per_call.items()},
            "load_average": os.getloadavg()[0]}


if __name__ == "__main__":
    main()
