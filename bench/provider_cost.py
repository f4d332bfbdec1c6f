"""The fake provider's own CPU cost under the benchmark's call pattern, read from /proc.

The fake shares the 2 cores with the server it measures, so its cost per call has to stay
small next to the server's. This starts the fake as its own process (any module with the
``python -m ... --port 0`` CLI, e.g. to compare an older implementation or another HTTP
protocol), opens N keep-alive connections, and has each make ROUNDS streamed ``1s``-profile
calls at once per round (raw asyncio client: cheap, reads the chunked SSE body to its end).
It prints the provider's CPU seconds and the calls' p50/p99 duration (ideal: 1.0 s).

    python -m bench.provider_cost --n 1000 --rounds 3
    python -m bench.provider_cost --n 1000 --rounds 3 --provider-args="--http h11"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import subprocess
import time

from .common import PYTHON, ROOT, percentile, profile_named, raise_fd_limit
from .procstats import cpu_seconds

FAKE_MODULE = "tests.doubles.fake_openai"


async def _call(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], index: int) -> float:
    reader, writer = connection
    started = time.monotonic()
    body = json.dumps({"model": "fake", "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": f"Please research question {index}"}]}).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b"
                 % (len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"unexpected response: {head[:80]!r}")
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        await reader.readexactly(size + 2)
    await reader.readexactly(2)
    return time.monotonic() - started


async def _load(port: int, pid: int, n: int, rounds: int) -> tuple[float, float, list[float]]:
    """Provider CPU seconds, wall seconds and every call's duration."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    durations: list[float] = []
    for _ in range(rounds):
        durations += await asyncio.gather(*(_call(c, i) for i, c in enumerate(connections)))
    wall, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu_before
    for _reader, writer in connections:
        writer.close()
    return cpu, wall, durations


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.provider_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", default=FAKE_MODULE, help="the fake provider module to run")
    parser.add_argument("--provider-args", default="", help="extra CLI flags for it, e.g. '--http h11'")
    parser.add_argument("--n", type=int, default=1000, help="concurrent connections (calls per round)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    raise_fd_limit()
    provider_args = shlex.split(args.provider_args)
    cmd = [PYTHON, "-m", args.module, "--port", "0", *profile_named("1s").provider_args(), *provider_args]
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        found = re.search(rb":(\d+)/v1", process.stdout.readline())
        if found is None:
            raise RuntimeError("the fake provider did not say where it listens")
        cpu, wall, durations = asyncio.run(_load(int(found.group(1)), process.pid, args.n, args.rounds))
    finally:
        process.terminate()
        process.wait(10)
    print(f"{args.module} {args.provider_args}: {len(durations)} calls, provider CPU {cpu:.2f} s in {wall:.2f} s; "
          f"call p50 {percentile(durations, 0.5):.3f} s, p99 {percentile(durations, 0.99):.3f} s")


if __name__ == "__main__":
    main()
