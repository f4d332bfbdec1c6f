"""``python -m tests.doubles.fake_openai``: the fake provider as a process, for the load harness.

It binds 127.0.0.1 only, prints ``fake provider listening on <base url>`` and runs until
SIGINT/SIGTERM, then prints its request count. Timing flags are in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal

from .behaviours import Behaviour, Fault
from .server import FakeProvider


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.doubles.fake_openai",
        description="Loopback fake OpenAI chat-completions server (127.0.0.1 only).",
    )
    parser.add_argument("--port", type=int, default=9100, help="TCP port (0 = any free port)")
    parser.add_argument("--model", default="fake", help="model id to report")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to the first streamed delta")
    parser.add_argument("--tokens-per-second", type=float, default=0.0, help="deltas per second (0 = unpaced)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds for a non-streamed call")
    parser.add_argument("--chunk-words", type=int, default=1, help="words per content delta")
    parser.add_argument("--answer-words", type=int, default=30, help="words per auto text answer")
    parser.add_argument("--member-id", default=None, help="member to delegate to (default: first listed)")
    parser.add_argument("--no-keep-alive", action="store_true", help="close the connection after each response")
    parser.add_argument(
        "--fault", choices=[f.value for f in Fault], default=Fault.NONE.value, help="fault for every request"
    )
    parser.add_argument("--retry-after", default="1", help='Retry-After for --fault rate_limit ("" = none)')
    parser.add_argument("--fault-after", type=int, default=2, help="deltas before a reset/stall/malformed fault")
    parser.add_argument("--header-delay", type=float, default=0.0, help="seconds before response headers")
    parser.add_argument("--http", choices=["httptools", "h11"], default="httptools", help="uvicorn's HTTP protocol")
    return parser.parse_args(argv)


def _raise_fd_limit() -> None:
    """Each concurrent stream holds a socket; the common soft limit of 1024 is too close."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _serve_forever(args: argparse.Namespace) -> None:
    provider = FakeProvider(
        port=args.port,
        model=args.model,
        ttft=args.ttft,
        tokens_per_second=args.tokens_per_second,
        latency=args.latency,
        chunk_words=args.chunk_words,
        answer_words=args.answer_words,
        member_id=args.member_id,
        keep_alive=not args.no_keep_alive,
        default=Behaviour(
            fault=Fault(args.fault),
            retry_after=args.retry_after or None,
            fault_after=args.fault_after,
            header_delay=args.header_delay,
        ),
        max_recorded=0,  # a benchmark needs the counters, not every prompt
        http=args.http,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with provider:
        print(f"fake provider listening on {provider.base_url}", flush=True)
        await stop.wait()
    print(f"fake provider stopped after {provider.total_requests} chat-completions requests", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM."""
    args = _parse_args(argv)
    _raise_fd_limit()
    asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
