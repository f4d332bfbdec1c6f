"""CPU of the deadline on each wait for a provider stream's next chunk, per chunk, in-process.

    python -m bench.chunk_deadline [--streams 200] [--chunks 50] [--rounds 6]

The retry layer (chat.agents.retry) gives every `anext` of a provider stream a deadline. Each
round runs `--streams` concurrent streams of `--chunks` deltas each (no I/O: the inner stream
hands the loop a turn per delta, as a chunk read from a socket does, so cancelled timers are
cleaned up as in a server), the wait for every delta taken in one of these ways:

- `none`: no deadline (the floor every way shares: the loop turn, the generators);
- `per-chunk timeout`: the code before `ChunkDeadline`, `async with asyncio.timeout(wait)` around
  each `anext`, the deadline read from Django's settings per chunk;
- `one Timeout rescheduled`: one `asyncio.Timeout` per attempt, rescheduled to the deadline before
  each `anext` and to none after it (the consumer's time must not count), which still schedules
  and cancels a timer per chunk;
- `ChunkDeadline`: the product's (chat.agents.chunk_deadline), as retry.py calls it.

The ways alternate round by round (the order rotating), so load from other work on the machine
falls on each alike. Prints the CPU per chunk of every round, the medians, each way's cost over
`none`, and the load average; then the whole retry layer (`ResilientModel.ainvoke_stream` over
a scripted inner stream, the same streams) per chunk, for scale. `--layer-only` prints that
figure alone: it needs nothing but `ResilientModel`, so this file copied onto an older checkout
measures that checkout's layer (run it there and here in alternation).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable


async def _inner(chunks: int, delta: object) -> AsyncIterator[object]:
    """A provider stream with no I/O: each delta after a loop turn, as a chunk off a socket."""
    for _ in range(chunks):
        await asyncio.sleep(0)
        yield delta


async def _none(chunks: int, delta: object) -> int:
    stream, seen = _inner(chunks, delta), 0
    while True:
        try:
            await anext(stream)
        except StopAsyncIteration:
            return seen
        seen += 1


async def _per_chunk_timeout(chunks: int, delta: object) -> int:
    from django.conf import settings

    stream, seen, produced = _inner(chunks, delta), 0, False
    while True:
        if produced:
            wait = settings.CIRKELLINE_STREAM_IDLE_TIMEOUT
        else:
            wait = settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT
        try:
            async with asyncio.timeout(wait):
                await anext(stream)
        except StopAsyncIteration:
            return seen
        seen, produced = seen + 1, True


async def _one_timeout_rescheduled(chunks: int, delta: object) -> int:
    from django.conf import settings

    loop = asyncio.get_running_loop()
    wait, idle = settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT, settings.CIRKELLINE_STREAM_IDLE_TIMEOUT
    stream, seen = _inner(chunks, delta), 0
    async with asyncio.timeout(None) as deadline:
        while True:
            deadline.reschedule(loop.time() + wait)
            try:
                await anext(stream)
            except StopAsyncIteration:
                return seen
            finally:
                deadline.reschedule(None)
            seen, wait = seen + 1, idle


async def _chunk_deadline(chunks: int, delta: object) -> int:
    from django.conf import settings

    from chat.agents.chunk_deadline import ChunkDeadline

    wait, idle = settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT, settings.CIRKELLINE_STREAM_IDLE_TIMEOUT
    deadline = ChunkDeadline()
    stream, seen = _inner(chunks, delta), 0
    try:
        while True:
            deadline.start(wait)
            try:
                try:
                    await anext(stream)
                finally:
                    deadline.stop()
            except StopAsyncIteration:
                return seen
            seen, wait = seen + 1, idle
    finally:
        deadline.close()


WAYS: dict[str, Callable] = {
    "none": _none,
    "per-chunk timeout": _per_chunk_timeout,
    "one Timeout rescheduled": _one_timeout_rescheduled,
    "ChunkDeadline": _chunk_deadline,
}


def _layer(chunks: int, delta: object) -> Callable:
    from chat.agents.retry import ResilientModel

    class Scripted:
        id, provider = "scripted", "bench"

        async def ainvoke_stream(self, *args, **kwargs):
            async for item in _inner(chunks, delta):
                yield item

    class Model(ResilientModel, Scripted):
        max_attempts_override = 1

    async def one(chunks: int, delta: object) -> int:
        return len([item async for item in Model().ainvoke_stream(messages=[])])

    return one


async def _us_per_chunk(way: Callable, streams: int, chunks: int, delta: object) -> float:
    before = time.process_time()
    seen = await asyncio.gather(*(way(chunks, delta) for _ in range(streams)))
    spent = time.process_time() - before
    assert sum(seen) == streams * chunks, seen
    return spent / (streams * chunks) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chunk_deadline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--layer-only", action="store_true", help="only the whole retry layer's figure")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    os.environ.setdefault("CIRKELLINE_TELEMETRY", "false")
    import django

    django.setup()
    from agno.models.response import ModelResponse

    delta = ModelResponse(content="three words here")
    load = os.getloadavg()[0]
    results: dict[str, list[float]] = {way: [] for way in WAYS}
    layer: list[float] = []

    async def rounds() -> None:
        await _us_per_chunk(_none, args.streams, args.chunks, delta)  # warm up
        names = [] if args.layer_only else list(WAYS)
        for index in range(args.rounds):
            shift = index % max(1, len(names))
            for name in names[shift:] + names[:shift]:
                results[name].append(await _us_per_chunk(WAYS[name], args.streams, args.chunks, delta))
            layer.append(await _us_per_chunk(_layer(args.chunks, delta), args.streams, args.chunks, delta))

    asyncio.run(rounds())
    print(f"{args.streams} concurrent streams x {args.chunks} chunks, {args.rounds} rounds; µs of CPU per chunk")
    floor = statistics.median(results["none"]) if results["none"] else 0.0
    for name, values in results.items():
        if not values:
            continue
        median = statistics.median(values)
        extra = "" if name == "none" else f"; over none {median - floor:.2f}"
        print(f"{name}: median {median:.2f} ({', '.join(f'{v:.2f}' for v in values)}){extra}")
    print(f"the retry layer (ResilientModel.ainvoke_stream): median {statistics.median(layer):.2f} "
          f"({', '.join(f'{v:.2f}' for v in layer)})")
    print(f"load average before {load:.2f} / after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
