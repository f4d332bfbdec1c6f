"""Recorded provider streams, replayed: the fake's answers captured byte for byte, served again by
an httpx2 transport without a server.

``record`` makes one chat-completions request to a running fake provider (or any provider) and
keeps its status, headers and raw body pieces, and whether the stream broke; ``ReplayTransport``
answers every request with one such ``Recording`` (optionally re-cut into pieces of ``size``
bytes), noting what it was sent. The lean-path contract test replays the same recording to both
model paths; ``bench/model_path.py --calls`` measures the CPU of a provider call with no network
in the way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

# Hop-by-hop and length headers describe the original transfer, not the replay.
_TRANSFER_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Recording:
    status: int
    headers: list[tuple[str, str]]
    pieces: list[bytes]
    error: type[Exception] | None = None  # raised by the transport after the last piece


def record(url: str, body: Mapping[str, Any], *, read_timeout: float = 1.0) -> Recording:
    """POST ``body`` to ``url`` (a chat-completions URL) and keep the answer as it came."""
    pieces: list[bytes] = []
    error = None
    with httpx2.Client(timeout=httpx2.Timeout(5.0, read=read_timeout)) as client:
        with client.stream("POST", url, json=dict(body)) as response:
            try:
                for piece in response.iter_raw():
                    pieces.append(piece)
            except httpx2.ReadTimeout:
                error = httpx2.ReadTimeout
            except httpx2.TransportError:
                error = httpx2.ReadError
            headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _TRANSFER_HEADERS]
            return Recording(response.status_code, headers, pieces, error)


@dataclass
class ReplayTransport(httpx2.AsyncBaseTransport):
    """Answers every request with one recording, its body cut into pieces of ``size`` bytes.

    ``bodies`` and ``requests`` keep what was sent (the JSON body; method, URL, headers and
    timeouts) unless ``keep`` is False (benchmarks).
    """

    recording: Recording
    size: int | None = None
    keep: bool = True
    bodies: list[dict] = field(default_factory=list)
    requests: list[tuple] = field(default_factory=list)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.keep:
            self.bodies.append(json.loads(await request.aread()))
            self.requests.append((request.method, str(request.url), sorted(request.headers.multi_items()),
                                  request.extensions.get("timeout")))
        return httpx2.Response(self.recording.status, headers=self.recording.headers, stream=_Body(self),
                               request=request)


class _Body(httpx2.AsyncByteStream):
    def __init__(self, replay: ReplayTransport) -> None:
        self.replay = replay

    async def __aiter__(self) -> AsyncIterator[bytes]:
        recording, size = self.replay.recording, self.replay.size
        pieces = recording.pieces
        if size is not None:
            whole = b"".join(pieces)
            pieces = [whole[i:i + size] for i in range(0, len(whole), size)]
        for piece in pieces:
            yield piece
        if recording.error is not None:
            raise recording.error("the recorded stream broke here")
