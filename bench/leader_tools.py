"""CPU of the leader's own tools as a run takes them up, one closure per process or one per run, in-process.

    python -m bench.leader_tools [--k 2000] [--rounds 6]

`search_my_documents` (chat.agents.knowledge) and `search_memories` (chat.agents.memory) read
their run from chat.context.current_run, so one closure per search/storage object serves every
run (`search_tool` is cached); agno derives a callable's schema, docstring and argument validator
once per callable object. "per run" builds a new closure each time (the code before the cache),
"shared" is the product; each is taken up as agno's `_determine_tools_for_model` does
(`Function.from_callable`, then `process_entrypoint`), K times per round, the two alternating
round by round. Prints µs per tool for every round and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


async def _search(user_pk, query, limit=5, username=None):  # the run service's search, stubbed
    return []


def _per_tool(make, target, k: int) -> float:
    from agno.tools.function import Function

    before = time.process_time()
    for _ in range(k):
        function = Function.from_callable(make(target))
        function.process_entrypoint(strict=False)
    return (time.process_time() - before) / k * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.leader_tools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    import django

    django.setup()
    from chat.agents import knowledge, memory

    load = os.getloadavg()[0]
    for name, cached, target in (("search_my_documents", knowledge.search_tool, _search),
                                 ("search_memories", memory.search_tool, object())):
        ways = {"per run": cached.__wrapped__, "shared": cached}
        results: dict[str, list[float]] = {way: [] for way in ways}
        for index in range(args.rounds):
            for way in (list(ways) if index % 2 == 0 else list(reversed(ways))):
                results[way].append(_per_tool(ways[way], target, args.k))
        for way, values in results.items():
            print(f"{name} {way}: median {statistics.median(values):.0f} µs per run "
                  f"({', '.join(f'{v:.0f}' for v in values)})")
    print(f"load average before {load:.2f} / after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
