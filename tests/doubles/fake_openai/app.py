"""The fake provider's ASGI application: routes, response timing and faults.

- ``POST /v1/chat/completions``: streamed (``text/event-stream``, OpenAI chunk frames, an
  optional usage chunk, ``data: [DONE]``) or not (one ``chat.completion`` object).
- ``GET /v1/models``: a list holding the configured model id. Anything else: 404 JSON.
- Timing: every delay counts from the moment the request was read. Streams get headers at
  once (or after ``header_delay``), the first delta at ``ttft`` and delta *i* at
  ``ttft + i / tokens_per_second``; a non-streamed answer is sent whole at ``latency``.
- A client hanging up ends its request at once, even while the response is waiting (ttft,
  stall): ASGI's ``http.disconnect`` is awaited next to the response.

The HTTP/1.1 server around it is uvicorn (see the package docstring); the one thing ASGI
cannot express, aborting a connection with a TCP reset, goes through the provider's
connection table (``FakeProvider.reset_connection``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from . import wire
from .behaviours import HTTP_FAULTS, STREAM_BREAKS, Behaviour, Fault, Outcome
from .recording import RecordedRequest
from .script import Reply, include_usage, prompt_tokens, script_reply, split_words

if TYPE_CHECKING:
    from .server import FakeProvider

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Generous for agno's long prompts, small enough that a runaway client cannot make a
# benchmark run out of memory.
_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
_CHAT_PATHS: Final = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS: Final = ("/v1/models", "/models")
_EMBEDDINGS_PATHS: Final = ("/v1/embeddings", "/embeddings")
_JSON: Final = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class _Plan:
    """A behaviour with every knob resolved against the server's defaults."""

    behaviour: Behaviour
    ttft: float
    tokens_per_second: float
    latency: float
    chunk_words: int
    answer_words: int


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left (or it is too large)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _client_keeps_alive(scope: Scope) -> bool:
    tokens: set[bytes] = set()
    for name, value in scope["headers"]:
        if name == b"connection":
            tokens |= {token.strip().lower() for token in value.split(b",")}
    if scope["http_version"] == "1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


async def _start(send: Send, status: int, headers: Headers, keep_alive: bool) -> None:
    connection = (b"connection", b"keep-alive" if keep_alive else b"close")
    await send({"type": "http.response.start", "status": status, "headers": [*headers, connection]})


async def _send_whole(send: Send, status: int, headers: Headers, body: bytes, keep_alive: bool) -> None:
    await _start(send, status, [*headers, (b"content-length", str(len(body)).encode())], keep_alive)
    await send({"type": "http.response.body", "body": body})


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


class ChatCompletionsApp:
    """The ASGI callable; ``provider`` holds the knobs, the ledger and the connection table."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        if body is None:
            return
        received = asyncio.get_running_loop().time()
        keep_alive = self.provider.keep_alive and _client_keeps_alive(scope)
        method, path = scope["method"], scope["path"].rstrip("/")
        if method == "POST" and path in _CHAT_PATHS:
            await self._chat_completions(scope, receive, send, body, received, keep_alive)
        elif method == "POST" and path in _EMBEDDINGS_PATHS:
            status, response = self.provider.embed(body)
            await _send_whole(send, status, [_JSON], response, keep_alive)
        elif method == "GET" and path in _MODELS_PATHS:
            await _send_whole(send, 200, [_JSON], wire.models_body(self.provider.model), keep_alive)
        else:
            error = wire.error_body(f"Unknown request URL: {method} {scope['path']}", "invalid_request_error",
                                    "unknown_url")
            await _send_whole(send, 404, [_JSON], error, keep_alive)

    async def _chat_completions(
        self, scope: Scope, receive: Receive, send: Send, raw: bytes, received: float, keep_alive: bool
    ) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            error = wire.error_body("The request body is not a JSON object.", "invalid_request_error", "invalid_json")
            await _send_whole(send, 400, [_JSON], error, keep_alive)
            return

        ledger = self.provider
        record = ledger.admit(body)
        outcome = Outcome.PENDING
        response = asyncio.ensure_future(self._respond(scope, send, record, received, keep_alive))
        # ASGI's next receive() is http.disconnect: when the client hangs up, or (later) once the
        # response is complete. Awaiting it next to the response makes a hang-up end the request
        # at once, even while the response sleeps (ttft, latency, stall).
        gone = asyncio.ensure_future(receive())
        try:
            await asyncio.wait((response, gone), return_when=asyncio.FIRST_COMPLETED)
            if response.done():
                outcome = response.result()
            else:
                outcome = Outcome.SERVER_STOPPED if self.provider.stopping else Outcome.CLIENT_CLOSED
        except asyncio.CancelledError:
            outcome = Outcome.SERVER_STOPPED
            raise
        finally:
            for task in (response, gone):
                task.cancel()
            try:
                # asyncio.wait never raises for its tasks, so a cancellation of this task is not
                # swallowed here; the request is counted as ended whatever happens. The loop turn
                # it takes also delivers a reset's connection_lost (scheduled by the abort) before
                # this returns, so uvicorn sees a disconnect, not a response left unfinished.
                await asyncio.wait((response, gone))
            finally:
                ledger.finish(record, outcome)

    def _plan(self, behaviour: Behaviour) -> _Plan:
        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        provider = self.provider
        return _Plan(
            behaviour=behaviour,
            ttft=pick(behaviour.ttft, provider.ttft),
            tokens_per_second=pick(behaviour.tokens_per_second, provider.tokens_per_second),
            latency=pick(behaviour.latency, provider.latency),
            chunk_words=pick(behaviour.chunk_words, provider.chunk_words),
            answer_words=pick(behaviour.answer_words, provider.answer_words),
        )

    async def _respond(
        self, scope: Scope, send: Send, record: RecordedRequest, received: float, keep_alive: bool
    ) -> Outcome:
        plan = self._plan(record.behaviour)
        behaviour = plan.behaviour
        await _sleep_until(received + behaviour.header_delay)

        if behaviour.fault in HTTP_FAULTS:
            error = HTTP_FAULTS[behaviour.fault]
            headers = [_JSON, (b"x-request-id", wire.new_id("req_").encode())]
            if behaviour.fault is Fault.RATE_LIMIT and behaviour.retry_after is not None:
                headers.append((b"retry-after", behaviour.retry_after.encode("latin-1")))
            body = wire.error_body(error.message, error.error_type, error.code)
            await _send_whole(send, error.status, headers, body, keep_alive)
            return Outcome.HTTP_ERROR

        reply = script_reply(record.body, behaviour, answer_words=plan.answer_words,
                             member_id=self.provider.member_id)
        usage = wire.usage_of(prompt_tokens(record.messages), reply.completion_tokens)
        completion_id = wire.new_id("chatcmpl-")
        created = int(time.time())
        if record.stream:
            return await self._stream(scope, send, plan, reply, usage, completion_id, created, record, received,
                                      keep_alive)

        await _sleep_until(received + max(behaviour.header_delay, plan.latency))
        payload = wire.completion_body(completion_id, created, self.provider.model, reply, usage)
        if behaviour.fault is Fault.MALFORMED_CHUNK:
            payload = payload[: len(payload) // 2]  # a truncated JSON document, correctly framed
        headers = [_JSON, (b"x-request-id", completion_id.encode())]
        if behaviour.fault in STREAM_BREAKS:
            await _start(send, 200, [*headers, (b"content-length", str(len(payload)).encode())], keep_alive)
            await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
            return await self._break_off(scope, behaviour.fault)
        await _send_whole(send, 200, headers, payload, keep_alive)
        return Outcome.COMPLETED

    async def _stream(
        self, scope: Scope, send: Send, plan: _Plan, reply: Reply, usage: dict[str, int], completion_id: str,
        created: int, record: RecordedRequest, received: float, keep_alive: bool,
    ) -> Outcome:
        # No content-length: the server sends the body chunked.
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                   (b"x-request-id", completion_id.encode())]
        await _start(send, 200, headers, keep_alive)

        with_usage = include_usage(record.body)
        frames = wire.ChunkFrames(completion_id, created, self.provider.model, with_usage)
        if reply.tool_call is not None:
            deltas = [frames.delta(delta) for delta in wire.tool_call_deltas(reply.tool_call)]
        else:
            deltas = [frames.content(piece) for piece in split_words(reply.text or "", plan.chunk_words)]
            # The role delta goes out with the first content rather than with the headers:
            # agno starts its time-to-first-token clock on any content, even "".
            role = frames.delta({"role": "assistant", "content": "", "refusal": None})
            deltas = [role + deltas[0], *deltas[1:]] if deltas else [role]
        tail = [frames.finish(reply.finish_reason)]
        if with_usage:
            tail.append(frames.usage(usage))
        tail.append(wire.DONE)

        # Delta i is due ttft + i / tokens_per_second after the request arrived; the tail
        # (finish, usage, [DONE]) goes out with the last delta.
        first_due = received + plan.ttft
        interval = 1.0 / plan.tokens_per_second if plan.tokens_per_second > 0 else 0.0
        schedule = [(first_due + i * interval, frame) for i, frame in enumerate(deltas)]
        last_due = schedule[-1][0]
        behaviour = plan.behaviour
        fault = behaviour.fault
        if fault in STREAM_BREAKS:
            await _send_paced(send, schedule[: behaviour.fault_after], last=False)
            return await self._break_off(scope, fault)
        if fault is Fault.MALFORMED_CHUNK:
            cut = min(behaviour.fault_after, len(schedule))
            schedule.insert(cut, (schedule[cut - 1][0] if cut else first_due, wire.MALFORMED))
        schedule += [(last_due, frame) for frame in tail]
        await _send_paced(send, schedule, last=True)
        return Outcome.COMPLETED

    async def _break_off(self, scope: Scope, fault: Fault) -> Outcome:
        """End a response the wrong way: a TCP reset, or silence until the client gives up.

        A stall just never returns: the http.disconnect watcher ends the request when the
        client hangs up, and a server stop aborts the connection."""
        if fault is Fault.RESET:
            await self.provider.reset_connection(scope["client"])
            return Outcome.RESET
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable: a stall only ends by cancellation")


async def _send_paced(send: Send, schedule: list[tuple[float, bytes]], *, last: bool) -> None:
    """Send each frame at its due time, coalescing all frames already due into one write;
    with ``last`` the final write ends the response.

    Sleeping to absolute deadlines keeps the pace exact however long each write takes, and
    coalescing means that a loop falling behind under load catches up with fewer, larger
    writes instead of adding per-frame overhead exactly when it can least afford it."""
    loop = asyncio.get_running_loop()
    index = 0
    while index < len(schedule):
        now = loop.time()
        due = schedule[index][0]
        if due > now:
            await asyncio.sleep(due - now)
            now = loop.time()
        batch = []
        while index < len(schedule) and schedule[index][0] <= now:
            batch.append(schedule[index][1])
            index += 1
        more = not last or index < len(schedule)
        await send({"type": "http.response.body", "body": b"".join(batch), "more_body": more})
    if last and not schedule:
        await send({"type": "http.response.body", "body": b""})
