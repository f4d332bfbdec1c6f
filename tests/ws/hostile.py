"""A hostile websocket client, run in a process of its own so that its own work (encoding and
masking megabytes) does not slow the test's /health probes:

    python -m tests.ws.hostile ws://127.0.0.1:PORT/ws/chat/ SOCKETS BYTES

Each of SOCKETS unauthenticated sockets sends one frame of about BYTES of small nested objects
and reads until the server closes it; prints the close codes, one per line.
"""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def nested_frame(size: int) -> str:
    one = json.dumps({"a": {"b": [1, 2, {"c": "x"}]}})
    return '{"type":"auth","token":[' + ",".join([one] * (size // (len(one) + 1))) + "]}"


async def one(url: str, frame: str) -> int | None:
    async with connect(url, max_size=None) as ws:
        await ws.send(frame)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 60)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None


async def main(url: str, sockets: int, size: int) -> None:
    frame = nested_frame(size)
    for code in await asyncio.gather(*(one(url, frame) for _ in range(sockets))):
        print(code)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
