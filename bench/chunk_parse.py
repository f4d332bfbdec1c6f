"""CPU of making one streamed chat-completions chunk into agno's `ModelResponse` delta, in-process.

    python -m bench.chunk_parse [--chunks 20000] [--rounds 6]

The lean streaming path (chat.agents.openai_lean) parses each `data:` payload with the json
module, then makes it into agno's delta. Two ways are measured on the chunks a stream is made of
(text deltas; the first with `role`, one with keys outside the SDK's schema), alternating round by
round so load from other work on the machine falls on both alike:

- `agno`: agno's own `OpenAIChat._parse_provider_response_delta` on the payload's `_Chunk` view;
- `text_delta`: chat.agents.openai_lean.text_delta, which the lean path tries first.

Prints µs per chunk for every round, the medians and the load average. The two give equal deltas
(tests/agents/test_openai_lean.py compares whole recorded streams with the SDK path's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def _chunks() -> list[dict]:
    base = {"id": "chatcmpl-b1", "object": "chat.completion.chunk", "created": 1, "model": "fake",
            "system_fingerprint": None}
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    extra = {**base, "obfuscation": "Zx9", "choices": [{"index": 0, "delta": {"content": " more"},
                                                         "finish_reason": None}]}
    words = [{**base, "choices": [{"index": 0, "delta": {"content": f" word{i}"}, "finish_reason": None}]}
             for i in range(10)]
    return [first, *words, extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20000, help="chunks per round and way")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    import django

    django.setup()
    from agno.models.openai import OpenAIChat

    from chat.agents.openai_lean import _chunk_fields, as_chunk, text_delta

    _chunk_fields()
    model = OpenAIChat(id="fake", api_key="unused")
    agno_parse = model._parse_provider_response_delta
    sample = _chunks()
    payloads = [sample[i % len(sample)] for i in range(args.chunks)]
    ways = {"agno": lambda data: agno_parse(as_chunk(data)), "text_delta": text_delta}
    for data in sample:  # the same delta both ways (the tests compare whole streams)
        assert text_delta(data) is not None
    seen: dict[str, list[float]] = {name: [] for name in ways}
    for index in range(args.rounds):
        names = list(ways) if index % 2 == 0 else list(reversed(ways))
        for name in names:
            parse = ways[name]
            started = time.process_time()
            for data in payloads:
                parse(data)
            seen[name].append((time.process_time() - started) / args.chunks * 1e6)
        print(f"round {index + 1}: " + ", ".join(f"{name} {seen[name][-1]:.2f} µs" for name in names), flush=True)
    print("medians (µs per chunk): " + ", ".join(f"{name} {statistics.median(v):.2f}" for name, v in seen.items()))
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
