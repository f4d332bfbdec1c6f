"""Load generator: N concurrent users, each doing one streamed team run over SSE (or the websocket).

    python -m bench.loadgen --url http://127.0.0.1:8000 --tokens-file tokens.txt --n 100 --out load.json

Each user opens its own connection and sends ``POST /teams/cirkelline/runs`` (form field
``message``, ``Authorization: Bearer <jwt>``), then reads the event stream to its end. Per run
it records: completion time (request start -> terminal frame), time to first token as the
client sees it (the first ``TeamRunContent`` / ``RunContent`` frame with non-empty content),
the number of SSE frames, and an error when the HTTP status is not 200, the terminal frame is
``TeamRunError`` / ``TeamRunCancelled``, no terminal frame arrives, or anything raises.

Why two clients: on a 2-core box the load generator competes with the server for CPU, so
its own cost must be small and *measured*. ``--client raw`` (the default) speaks HTTP/1.1
over plain asyncio streams, decodes the chunked body and only JSON-parses the frames it
must (content frames until the first token, terminal errors): well under a millisecond of
CPU per run. ``--client httpx`` uses httpx's streaming API, as an independent cross-check
of the raw client's numbers; it costs several times more CPU per run. Either way the
output includes the generator's own CPU seconds, and the harness flags rounds where the
generator used most of a core (client-bound numbers are then not server numbers).

``--client ws`` runs each user's message over the chat websocket instead (``/ws/chat/``, JWT in
the ``Sec-WebSocket-Protocol`` header, one ``run`` frame, events read until the terminal one), with
the `websockets` library: the same figures, so websocket and SSE runs compare side by side.

The output (``--out`` or stdout) is JSON: wall time, generator CPU, and one record per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from .common import CONTENT_EVENTS, MESSAGE, RUNS_PATH, TERMINAL_EVENTS, raise_fd_limit

_ID_PREFIX = b"id: "
_EVENT_PREFIX = b"event: "
_DATA_PREFIX = b"data: "
_CONTENT_NAMES = frozenset(name.encode() for name in CONTENT_EVENTS)
_TERMINAL_NAMES = frozenset(name.encode() for name in TERMINAL_EVENTS)


@dataclass(slots=True)
class RunRecord:
    """One user's run. Times are seconds; ``start`` is relative to the load's start."""

    user: int
    start: float = 0.0
    completion: float | None = None
    ttft: float | None = None
    events: int = 0
    status: int | None = None
    terminal: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class RunObserver:
    """Turns a run's events into a ``RunRecord`` (shared by the HTTP clients and bare agno)."""

    record: RunRecord
    started_at: float  # loop.time() when the user started
    _buffer: bytearray = field(default_factory=bytearray)

    def observe(self, name: str, content: Any, now: float, error_text: str | None = None) -> None:
        """One event: its name, its content (only looked at until the first token), when."""
        record = self.record
        if record.terminal is not None:
            return  # anything after the terminal frame is not part of the run
        record.events += 1
        if record.ttft is None and name in CONTENT_EVENTS and content:
            record.ttft = now - self.started_at
        if name in TERMINAL_EVENTS:
            record.terminal = name
            record.completion = now - self.started_at
            if name != "TeamRunCompleted":
                record.error = f"{name}: {(error_text or '')[:200]}"

    def feed(self, data: bytes, now: float) -> None:
        """Raw SSE bytes (``[id: N\\n]event: X\\ndata: {...}\\n\\n`` frames, as AgentOS and Cirkelline send)."""
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            self._frame(bytes(buffer[start:end]), now)
            start = end + 2
        if start:
            del buffer[:start]

    def _frame(self, frame: bytes, now: float) -> None:
        if frame.startswith(_ID_PREFIX):  # Cirkelline's `id: <event_index>` line
            frame = frame[frame.find(b"\n") + 1 :]
        if not frame.startswith(_EVENT_PREFIX):
            return  # comments / keep-alives
        newline = frame.find(b"\n")
        name = frame[len(_EVENT_PREFIX) : newline if newline >= 0 else None].strip()
        content: Any = None
        error_text: str | None = None
        # JSON-parse only what decides a figure: content frames until the first token, and
        # terminal frames that report a failure.
        wants_content = self.record.ttft is None and name in _CONTENT_NAMES
        is_failure = name in _TERMINAL_NAMES and name != b"TeamRunCompleted"
        if (wants_content or is_failure) and newline >= 0:
            payload = frame[newline + 1 :]
            if payload.startswith(_DATA_PREFIX):
                try:
                    data = json.loads(payload[len(_DATA_PREFIX) :])
                except ValueError:
                    data = {}
                content = data.get("content") if isinstance(data, dict) else None
                error_text = str(content) if is_failure else None
        self.observe(name.decode(errors="replace"), content, now, error_text)

    def finish(self, now: float) -> RunRecord:
        record = self.record
        if record.error is None and record.terminal is None:
            record.error = "stream ended without a terminal event"
        if record.completion is None:
            record.completion = now - self.started_at
        return record


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to send runs."""

    base_url: str
    path: str = RUNS_PATH
    message: str = MESSAGE
    fields: tuple[tuple[str, str], ...] = ()
    # Send `<user_field>=bench-user-<i>` (AgentOS without auth has no other notion of a user).
    user_field: str | None = None

    def form(self, user: int) -> dict[str, str]:
        form = {"message": self.message, **dict(self.fields)}
        if self.user_field:
            form[self.user_field] = f"bench-user-{user}"
        return form


async def _raw_run(target: Target, user: int, token: str | None, observer: RunObserver) -> None:
    """One run over a plain asyncio connection (HTTP/1.1, ``Connection: close``)."""
    loop = asyncio.get_running_loop()
    url = urlsplit(target.base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = urlencode(target.form(user)).encode()
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: text/event-stream",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        observer.record.status = status
        headers = {}
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if status != 200:
            rest = await reader.read(2000)
            observer.record.error = f"HTTP {status}: {rest[:200].decode(errors='replace')}"
            return
        if headers.get(b"transfer-encoding") == b"chunked":
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    break
                chunk = await reader.readexactly(size + 2)
                observer.feed(chunk[:-2], loop.time())
        elif b"content-length" in headers:
            observer.feed(await reader.readexactly(int(headers[b"content-length"])), loop.time())
        else:
            while chunk := await reader.read(65536):
                observer.feed(chunk, loop.time())
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def _httpx_run(client: Any, target: Target, user: int, token: str | None, observer: RunObserver) -> None:
    """One run through httpx's streaming API (cross-check of the raw client)."""
    loop = asyncio.get_running_loop()
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with client.stream("POST", target.base_url + target.path, data=target.form(user), headers=headers) as resp:
        observer.record.status = resp.status_code
        if resp.status_code != 200:
            text = (await resp.aread())[:200].decode(errors="replace")
            observer.record.error = f"HTTP {resp.status_code}: {text}"
            return
        async for chunk in resp.aiter_raw():
            observer.feed(chunk, loop.time())


WS_PATH = "/ws/chat/"


async def _ws_run(target: Target, user: int, token: str | None, observer: RunObserver) -> None:
    """One run over the chat websocket: `ready`, one `run` frame, event frames to the terminal event."""
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    url = target.base_url.replace("http", "ws", 1) + WS_PATH
    record = observer.record
    async with connect(url, subprotocols=["bearer", token] if token else None, max_size=None) as ws:
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            record.error = f"not authenticated: {ready}"[:200]
            return
        record.status = 101
        fields = {k: v for k, v in target.form(user).items() if k != "message"}
        await ws.send(json.dumps({"type": "run", "message": target.message, **fields}))
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "events":
                now = loop.time()
                for event in frame["events"]:
                    content = event.get("content")
                    observer.observe(event.get("event", ""), content, now, str(content or ""))
                if record.terminal is not None:
                    return
            elif kind == "error":
                record.error = f"error {frame.get('status')}: {frame.get('detail')}"[:200]
                return


@dataclass
class LoadResult:
    n: int
    client: str
    wall_s: float
    cpu_s: float
    records: list[RunRecord]

    @property
    def errors(self) -> int:
        return sum(1 for r in self.records if not r.ok)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "client": self.client, "wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 4),
                "records": [asdict(r) for r in self.records]}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_load(
    target: Target,
    tokens: Sequence[str | None],
    n: int,
    *,
    client: str = "raw",
    run_timeout: float = 120.0,
    ramp: float = 0.0,
) -> LoadResult:
    """Run ``n`` users at once (user i uses ``tokens[i]``); every run is bounded by ``run_timeout``.

    ``ramp`` > 0 spreads the starts evenly over that many seconds instead of one burst.
    """
    if len(tokens) < n:
        raise ValueError(f"{n} users need {n} tokens, got {len(tokens)}")
    loop = asyncio.get_running_loop()
    httpx_client = None
    if client == "httpx":
        import httpx

        httpx_client = httpx.AsyncClient(
            timeout=httpx.Timeout(run_timeout), limits=httpx.Limits(max_connections=None, max_keepalive_connections=0)
        )
    elif client not in ("raw", "ws"):
        raise ValueError(f"unknown client {client!r}: use raw, httpx or ws")

    load_start = loop.time()

    async def user(i: int) -> RunRecord:
        if ramp > 0:
            await asyncio.sleep(ramp * i / n)
        started = loop.time()
        observer = RunObserver(RunRecord(user=i, start=started - load_start), started)
        try:
            async with asyncio.timeout(run_timeout):
                if httpx_client is not None:
                    await _httpx_run(httpx_client, target, i, tokens[i], observer)
                elif client == "ws":
                    await _ws_run(target, i, tokens[i], observer)
                else:
                    await _raw_run(target, i, tokens[i], observer)
        except TimeoutError:
            observer.record.error = observer.record.error or f"timed out after {run_timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - every failure is a data point, not a crash
            observer.record.error = observer.record.error or f"{type(exc).__name__}: {exc}"[:300]
        return observer.finish(loop.time())

    cpu_before = _cpu_seconds()
    try:
        records = await asyncio.gather(*(user(i) for i in range(n)))
    finally:
        if httpx_client is not None:
            await httpx_client.aclose()
    wall = loop.time() - load_start
    return LoadResult(n=n, client=client, wall_s=wall, cpu_s=_cpu_seconds() - cpu_before, records=list(records))


def read_tokens(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--n", type=int, required=True, help="concurrent users (one run each)")
    parser.add_argument("--tokens-file", type=Path, help="one JWT per line; user i uses line i (none: no auth)")
    parser.add_argument("--client", choices=("raw", "httpx", "ws"), default="raw")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one run may take")
    parser.add_argument("--ramp", type=float, default=0.0, help="spread the starts over this many seconds")
    parser.add_argument("--message", default=MESSAGE)
    parser.add_argument("--path", default=RUNS_PATH)
    parser.add_argument("--field", action="append", default=[], metavar="NAME=VALUE", help="extra form field")
    parser.add_argument("--user-field", help="send NAME=bench-user-<i> (AgentOS without auth)")
    parser.add_argument("--out", type=Path, help="write the JSON result here (default: stdout)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    raise_fd_limit()
    tokens: list[str | None] = list(read_tokens(args.tokens_file)) if args.tokens_file else [None] * args.n
    fields = tuple(tuple(item.split("=", 1)) for item in args.field)
    target = Target(base_url=args.url.rstrip("/"), path=args.path, message=args.message,
                    fields=fields, user_field=args.user_field)  # type: ignore[arg-type]
    started = time.time()
    result = asyncio.run(run_load(target, tokens, args.n, client=args.client, run_timeout=args.timeout, ramp=args.ramp))
    payload = {"started_at": started, **result.to_dict()}
    text = json.dumps(payload)
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text + "\n")
    print(f"loadgen: {args.n} runs in {result.wall_s:.2f} s, {result.errors} errors, client CPU {result.cpu_s:.2f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
