"""A loopback fake of the OpenAI chat-completions API, for tests and benchmarks.

Why it exists: the app talks to model providers through agno's OpenAI-compatible model
class, i.e. through the real ``openai`` SDK and its HTTP stack. Faking at the HTTP level
(instead of swapping the agno model) keeps that whole path — connection pooling, SSE
parsing, error mapping, retries, cancellation — under test, and lets a benchmark push
~1000 concurrent streamed calls through the app without paying or waiting for a real
provider. The server is plain ``asyncio`` (no threads per request, no framework) so that
its own overhead stays far below the system it is measuring.

What it does (see ``Behaviour`` for per-request scripting):

- ``POST /v1/chat/completions``: streamed (``text/event-stream``, OpenAI chunk frames, an
  optional usage chunk, ``data: [DONE]``) or not (one ``chat.completion`` object).
- ``GET /v1/models``: a list holding the configured model id. Anything else: 404 JSON.
- The default ("auto") script: a request that offers the agno team tool
  ``delegate_task_to_member`` and has no ``role: "tool"`` message after the last user
  message is answered with ``delegate_task_to_member(member_id=<first <member id="...">
  in the system message>, task=<last user message>)``; everything else gets a
  deterministic text answer (see ``compose_answer``).
- Usage is ``prompt_tokens = ceil(prompt_chars / 4)``, where ``prompt_chars`` counts the
  text of every message (string content or text parts) plus the name and arguments of
  assistant tool calls, and ``completion_tokens = ceil(answer_chars / 4)`` (the text, or
  the tool call's name + arguments JSON); ``total_tokens`` is their sum.
- Timing: every delay counts from the moment the request was read. Streams get headers at
  once (or after ``header_delay``), the first delta at ``ttft`` and delta *i* at
  ``ttft + i / tokens_per_second``; a non-streamed answer is sent whole at ``latency``.
- Faults: HTTP 429 (with or without ``Retry-After``), 500, 503, 529, the client errors
  400, 401, 403, 404, 413 and 422 (never worth a retry), a TCP reset mid-stream, a stalled
  stream, a malformed chunk, slow response headers, and delegation to an unknown member or
  with an empty task.
- Observability: ``open_connections``, ``active_requests``, ``total_requests``,
  ``requests`` (body, behaviour and ``Outcome`` of each call) and ``wait_idle``. A client
  hanging up is noticed at once, even while the response is waiting (ttft, stall).

In-process use (tests)::

    with FakeProvider() as provider:            # own event loop in a daemon thread
        client = openai.AsyncOpenAI(base_url=provider.base_url, api_key="x")
        provider.enqueue(Behaviour.rate_limited(retry_after=3))
        ...
        assert provider.wait_idle_sync(1.0)

    async with FakeProvider() as provider:      # inside an already running loop
        ...

As a process (benchmarks)::

    python -m bench.fake_provider --port 9100 --ttft 1.0 --tokens-per-second 50 --answer-words 30

CLI flags (all optional; timing values in seconds):

    --port N                 TCP port on 127.0.0.1 (default 9100; 0 picks a free one)
    --model ID               model id reported by /v1/models and in responses (default "fake")
    --ttft S                 request arrival -> first content/tool-call delta (streams)
    --tokens-per-second R    deltas per second after the first; 0 = as fast as possible
    --latency S              total time of a non-streamed call
    --chunk-words N          words per streamed content delta (default 1)
    --answer-words N         words in an auto text answer (default 30)
    --member-id ID           member the auto script delegates to (default: first listed)
    --no-keep-alive          answer "Connection: close" and close after every response
    --fault NAME             apply a fault to every request (see ``Fault``)
    --retry-after VALUE      Retry-After header for --fault rate_limit ("" = no header)
    --fault-after N          deltas sent before a reset/stall/malformed fault (default 2)
    --header-delay S         delay before response headers ("slow first byte")

It binds 127.0.0.1 only, prints ``fake provider listening on <base url>`` and runs until
SIGINT/SIGTERM, then prints its request count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import http
import itertools
import json
import re
import resource
import secrets
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

HOST: Final = "127.0.0.1"
DELEGATE_TOOL: Final = "delegate_task_to_member"

# agno renders its roster as `<member id="research-specialist" name="Research Specialist">`.
_MEMBER_ID_RE: Final = re.compile(r'<member id="([^"]*)"')

# Request limits: generous for agno's long prompts, small enough that a runaway client
# cannot make a benchmark run out of memory.
_MAX_HEADER_BYTES: Final = 64 * 1024
_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
_READ_SIZE: Final = 64 * 1024
_DRAIN_ABOVE: Final = 64 * 1024  # asyncio's default high-water mark

# Streamed tool-call arguments are cut into pieces this long, as real providers do, so
# clients must reassemble them.
_ARGUMENT_PIECE_CHARS: Final = 16

# Ids must be unique across runs (agno stores tool-call ids), cheap to make (no uuid per
# delta) and recognisable in logs.
_ID_PREFIX: Final = secrets.token_hex(4)
_ids = itertools.count(1)


def _new_id(kind: str) -> str:
    return f"{kind}fake{_ID_PREFIX}{next(_ids):x}"


# --- behaviour scripting ----------------------------------------------------------------


class Fault(enum.StrEnum):
    """How a request should go wrong. The values are also the CLI's ``--fault`` names."""

    NONE = "none"
    RATE_LIMIT = "rate_limit"  # HTTP 429; Retry-After from Behaviour.retry_after, None = absent
    SERVER_ERROR = "server_error"  # HTTP 500
    UNAVAILABLE = "unavailable"  # HTTP 503
    OVERLOADED = "overloaded"  # HTTP 529 (the "overloaded" status some providers use)
    # Client errors: the request itself is wrong, so a retry would get the same answer.
    BAD_REQUEST = "bad_request"  # HTTP 400
    UNAUTHORIZED = "unauthorized"  # HTTP 401
    FORBIDDEN = "forbidden"  # HTTP 403
    NOT_FOUND = "not_found"  # HTTP 404
    TOO_LARGE = "too_large"  # HTTP 413
    UNPROCESSABLE = "unprocessable"  # HTTP 422
    # Stream faults. A non-streamed call gets half its JSON body before the reset or stall,
    # and a truncated (but correctly framed) JSON body for MALFORMED_CHUNK.
    RESET = "reset"  # send `fault_after` deltas, then abort the TCP connection with RST
    STALL = "stall"  # send `fault_after` deltas, then nothing until the client hangs up
    MALFORMED_CHUNK = "malformed_chunk"  # after `fault_after` deltas, a `data:` line that is not JSON


# status, reason phrase, OpenAI error type, error code, message
_HTTP_FAULTS: Final[dict[Fault, tuple[int, str, str, str | None, str]]] = {
    Fault.RATE_LIMIT: (
        429,
        "Too Many Requests",
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests (fake provider). Please try again later.",
    ),
    Fault.SERVER_ERROR: (
        500,
        "Internal Server Error",
        "server_error",
        None,
        "The server had an error while processing your request (fake provider).",
    ),
    Fault.UNAVAILABLE: (
        503,
        "Service Unavailable",
        "server_error",
        "service_unavailable",
        "The engine is currently overloaded, please try again later (fake provider).",
    ),
    Fault.OVERLOADED: (529, "Site Overloaded", "overloaded_error", "overloaded", "Overloaded (fake provider)."),
    Fault.BAD_REQUEST: (400, "Bad Request", "invalid_request_error", None, "Invalid request (fake provider)."),
    Fault.UNAUTHORIZED: (
        401, "Unauthorized", "invalid_request_error", "invalid_api_key", "Incorrect API key provided (fake provider)."
    ),
    Fault.FORBIDDEN: (403, "Forbidden", "permission_error", None, "Not allowed to use this model (fake provider)."),
    Fault.NOT_FOUND: (
        404, "Not Found", "invalid_request_error", "model_not_found", "The model does not exist (fake provider)."
    ),
    Fault.TOO_LARGE: (
        413, "Request Entity Too Large", "invalid_request_error", "request_too_large",
        "Request too large (fake provider).",
    ),
    Fault.UNPROCESSABLE: (422, "Unprocessable Entity", "invalid_request_error", None, "Unprocessable (fake provider)."),
}
_STATUS_FAULTS: Final = {status: fault for fault, (status, *_rest) in _HTTP_FAULTS.items()}


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What one chat-completions request does.

    Every field has a neutral default, so ``Behaviour()`` is the auto script with the
    server's timing. Timing fields left ``None`` fall back to the server-wide values
    (constructor / CLI), which lets a test slow down one call without restating the rest.

    Content: ``text`` forces a text answer, ``tool_name`` (+ ``tool_arguments``, a dict or
    a raw JSON string) forces a tool call; otherwise the auto script decides, with
    ``member_id`` / ``task`` overriding the arguments of an auto delegation (that is how
    "unknown member" and "empty task" delegations are made).

    Faults: ``fault`` picks one of ``Fault``; ``retry_after`` is the 429's ``Retry-After``
    value (``None`` sends none); ``fault_after`` is how many content / tool-call deltas go
    out before a stream-level fault. ``header_delay`` delays the response headers ("slow
    first byte") and combines with anything.
    """

    text: str | None = None
    tool_name: str | None = None
    tool_arguments: Mapping[str, Any] | str | None = None
    member_id: str | None = None
    task: str | None = None
    fault: Fault = Fault.NONE
    retry_after: str | None = "1"
    fault_after: int = 2
    header_delay: float = 0.0
    ttft: float | None = None
    tokens_per_second: float | None = None
    latency: float | None = None
    chunk_words: int | None = None
    answer_words: int | None = None

    def __post_init__(self) -> None:
        if self.text is not None and self.tool_name is not None:
            raise ValueError("a Behaviour forces either text or a tool call, not both")
        if self.fault_after < 0 or self.header_delay < 0:
            raise ValueError("fault_after and header_delay must not be negative")
        _check_knobs(self.ttft, self.tokens_per_second, self.latency, self.chunk_words, self.answer_words)

    # Named constructors, so a test reads as the scenario it sets up.

    @classmethod
    def say(cls, text: str, **knobs: Any) -> Behaviour:
        """Answer exactly ``text`` (streamed word-chunked like any answer)."""
        return cls(text=text, **knobs)

    @classmethod
    def call_tool(cls, name: str, arguments: Mapping[str, Any] | str | None = None, **knobs: Any) -> Behaviour:
        """Answer with one call of tool ``name``, whether or not the request offered it."""
        return cls(tool_name=name, tool_arguments=arguments if arguments is not None else {}, **knobs)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 1) -> Behaviour:
        """HTTP 429; ``retry_after=None`` leaves the ``Retry-After`` header out."""
        value = None if retry_after is None else _format_retry_after(retry_after)
        return cls(fault=Fault.RATE_LIMIT, retry_after=value)

    @classmethod
    def http_error(cls, status: int) -> Behaviour:
        """HTTP 400, 401, 403, 404, 413, 422, 429, 500, 503 or 529 with an OpenAI-style JSON error body."""
        try:
            return cls(fault=_STATUS_FAULTS[status])
        except KeyError:
            raise ValueError(f"no fault for HTTP {status}; choose one of {sorted(_STATUS_FAULTS)}") from None

    @classmethod
    def reset(cls, after: int = 2) -> Behaviour:
        """Stream ``after`` deltas, then reset the TCP connection."""
        return cls(fault=Fault.RESET, fault_after=after)

    @classmethod
    def stall(cls, after: int = 2) -> Behaviour:
        """Stream ``after`` deltas, then go silent until the client closes the connection."""
        return cls(fault=Fault.STALL, fault_after=after)

    @classmethod
    def malformed_chunk(cls, after: int = 2) -> Behaviour:
        """Stream ``after`` deltas, then a ``data:`` line that is not JSON, then the rest."""
        return cls(fault=Fault.MALFORMED_CHUNK, fault_after=after)

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Behaviour:
        """Hold the response headers back for ``seconds``."""
        return cls(header_delay=seconds)

    @classmethod
    def unknown_member(cls, member_id: str = "no-such-member") -> Behaviour:
        """Delegate (when the request is a leader's) to a member that does not exist."""
        return cls(member_id=member_id)

    @classmethod
    def empty_task(cls) -> Behaviour:
        """Delegate (when the request is a leader's) with ``task=""``."""
        return cls(task="")


def _format_retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_knobs(
    ttft: float | None,
    tokens_per_second: float | None,
    latency: float | None,
    chunk_words: int | None,
    answer_words: int | None,
) -> None:
    for name, value in (("ttft", ttft), ("tokens_per_second", tokens_per_second), ("latency", latency)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must not be negative")
    if chunk_words is not None and chunk_words < 1:
        raise ValueError("chunk_words must be at least 1")
    if answer_words is not None and answer_words < 0:
        raise ValueError("answer_words must not be negative")


class Outcome(enum.StrEnum):
    """How a recorded request ended, so tests can tell an abort from a finished answer."""

    PENDING = "pending"
    COMPLETED = "completed"
    HTTP_ERROR = "http_error"
    RESET = "reset"
    CLIENT_CLOSED = "client_closed"
    SERVER_STOPPED = "server_stopped"


@dataclass(slots=True)
class RecordedRequest:
    """One chat-completions request as received, with the behaviour that answered it."""

    body: dict[str, Any]
    behaviour: Behaviour
    outcome: Outcome = Outcome.PENDING
    # time.monotonic() when the request was read, so a test can measure the gap between calls.
    received_at: float = 0.0

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return _tool_names(self.body)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        return _include_usage(self.body)


# --- the script: what to answer ---------------------------------------------------------


def _text_parts(message: Mapping[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return []


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string or a list of typed parts (joined by
    spaces; non-text parts such as images are ignored)."""
    return " ".join(_text_parts(message))


def _message_chars(message: Mapping[str, Any]) -> int:
    chars = sum(len(part) for part in _text_parts(message))
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            chars += len(str(function.get("name") or "")) + len(str(function.get("arguments") or ""))
    return chars


def estimate_tokens(chars: int) -> int:
    """``ceil(chars / 4)``: the usual rule of thumb, deterministic so tests can assert it."""
    return (chars + 3) // 4


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Tokens of a prompt: all message text (string content or text parts) plus the name
    and arguments of any assistant tool calls, divided by 4, rounded up. Tool schemas and
    roles are not counted."""
    return estimate_tokens(sum(_message_chars(m) for m in messages if isinstance(m, dict)))


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _since_last_user(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The last user message's text and the messages after it."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return message_text(messages[index]), messages[index + 1 :]
    return "", messages


def first_member_id(messages: list[dict[str, Any]]) -> str | None:
    """The first ``<member id="...">`` in the system / developer messages (agno's roster)."""
    for message in messages:
        if message.get("role") in ("system", "developer"):
            found = _MEMBER_ID_RE.search(message_text(message))
            if found:
                return found.group(1)
    return None


def compose_answer(prefix: str, seed: str, answer_words: int) -> str:
    """A deterministic answer: ``prefix``, then up to ``answer_words`` words of ``seed``,
    then filler ``tok1 tok2 ...`` until the answer has ``answer_words`` words.

    Quoting the seed (the user's message, or the tool results a leader got back) lets a
    test see what reached the model; the filler makes answers long enough to stream as
    many deltas. The answer has ``max(answer_words, words(prefix) + min(words(seed),
    answer_words))`` words.
    """
    words = prefix.split() + seed.split()[:answer_words]
    filler = 1
    while len(words) < answer_words:
        words.append(f"tok{filler}")
        filler += 1
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call to answer with; ``arguments`` stays text so a test may send invalid JSON."""

    name: str
    arguments: str  # JSON text, as on the wire


@dataclass(frozen=True, slots=True)
class Reply:
    """The content of one response: text, or a tool call."""

    text: str | None = None
    tool_call: ToolCall | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call is not None else "stop"

    @property
    def completion_tokens(self) -> int:
        if self.tool_call is not None:
            return estimate_tokens(len(self.tool_call.name) + len(self.tool_call.arguments))
        return estimate_tokens(len(self.text or ""))


def script_reply(body: Mapping[str, Any], behaviour: Behaviour, *, answer_words: int, member_id: str | None) -> Reply:
    """Decide what a request gets (forced content first, then the auto script)."""
    if behaviour.text is not None:
        return Reply(text=behaviour.text)
    if behaviour.tool_name is not None:
        arguments = behaviour.tool_arguments
        encoded = arguments if isinstance(arguments, str) else json.dumps(dict(arguments or {}), ensure_ascii=False)
        return Reply(tool_call=ToolCall(behaviour.tool_name, encoded))

    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    user_text, after_user = _since_last_user(messages)
    tool_results = [message_text(m) for m in after_user if m.get("role") == "tool"]
    if DELEGATE_TOOL in _tool_names(body) and not tool_results:
        member = behaviour.member_id if behaviour.member_id is not None else member_id
        if member is None:
            member = first_member_id(messages)
        if member is not None:
            task = user_text if behaviour.task is None else behaviour.task
            arguments = json.dumps({"member_id": member, "task": task}, ensure_ascii=False)
            return Reply(tool_call=ToolCall(DELEGATE_TOOL, arguments))
    if tool_results:
        return Reply(text=compose_answer("Summary of results:", " ".join(tool_results), answer_words))
    return Reply(text=compose_answer("Answer to:", user_text, answer_words))


def _split_words(text: str, chunk_words: int) -> list[str]:
    """Cut ``text`` into deltas of ``chunk_words`` words that concatenate back to it."""
    pieces = re.findall(r"\s*\S+", text)
    if not pieces:
        return [text] if text else []
    deltas = ["".join(pieces[i : i + chunk_words]) for i in range(0, len(pieces), chunk_words)]
    trailing = text[len("".join(pieces)) :]
    if trailing:
        deltas[-1] += trailing
    return deltas


# --- wire format ------------------------------------------------------------------------


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Text is sent as UTF-8; a lone surrogate (which has no UTF-8 form; tests send one to see that
# Cirkelline copes) goes out as its JSON escape, as a provider with ensure_ascii output would.
_WIRE = "backslashreplace"
_json_string: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
)


class _ChunkFrames:
    """Builds ``data: {chat.completion.chunk}\\n\\n`` frames for one response.

    The envelope (id, created, model, ...) is identical in every chunk of a response, so it
    is encoded once and only the delta is serialised per frame: with ~1000 concurrent
    streams the fake must not spend its CPU re-encoding constants.
    """

    __slots__ = ("_head", "_tail", "_final_tail", "_completion_id", "_created", "_model")

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        self._completion_id = completion_id
        self._created = created
        self._model = model
        envelope = (
            f'data: {{"id":{_json(completion_id)},"object":"chat.completion.chunk","created":{created},'
            f'"model":{_json(model)},"system_fingerprint":"fp_fake","choices":[{{"index":0,"delta":'
        )
        usage = ',"usage":null' if include_usage else ""
        self._head = envelope.encode()
        self._tail = f',"logprobs":null,"finish_reason":null}}]{usage}}}\n\n'.encode()
        self._final_tail = usage + "}\n\n"

    def delta(self, delta: Mapping[str, Any]) -> bytes:
        return self._head + _json(delta).encode("utf-8", _WIRE) + self._tail

    def content(self, piece: str) -> bytes:
        """The common case, ``{"content": piece}``, without a general JSON encoder call."""
        return self._head + b'{"content":' + _json_string(piece).encode("utf-8", _WIRE) + b"}" + self._tail

    def finish(self, finish_reason: str) -> bytes:
        return self._head + f'{{}},"logprobs":null,"finish_reason":"{finish_reason}"}}]{self._final_tail}'.encode()

    def usage(self, usage: Mapping[str, int]) -> bytes:
        chunk = {
            "id": self._completion_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage,
        }
        return b"data: " + _json(chunk).encode("utf-8", _WIRE) + b"\n\n"


_DONE: Final = b"data: [DONE]\n\n"
# What a truncated upstream line looks like: starts like a chunk, is not JSON.
_MALFORMED: Final = (
    b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"delta":{"content":\n\n'
)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_call_deltas(call: ToolCall) -> list[dict[str, Any]]:
    """A streamed tool call as OpenAI sends it: a first delta with the role, the call's id,
    type and name, then the arguments in pieces the client has to concatenate."""
    pieces = [
        call.arguments[i : i + _ARGUMENT_PIECE_CHARS] for i in range(0, len(call.arguments), _ARGUMENT_PIECE_CHARS)
    ]
    first = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"index": 0, "id": _new_id("call_"), "type": "function", "function": {"name": call.name, "arguments": ""}}
        ],
    }
    return [first] + [{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces]


def _completion_body(completion_id: str, created: int, model: str, reply: Reply, usage: dict[str, int]) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_call is not None:
        message["tool_calls"] = [
            {
                "id": _new_id("call_"),
                "type": "function",
                "function": {"name": reply.tool_call.name, "arguments": reply.tool_call.arguments},
            }
        ]
    return _json(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
            "usage": usage,
        }
    ).encode("utf-8", _WIRE)


def _error_body(message: str, error_type: str, code: str | None) -> bytes:
    return _json({"error": {"message": message, "type": error_type, "param": None, "code": code}}).encode()


def _reason(status: int) -> str:
    for fault_status, reason, *_rest in _HTTP_FAULTS.values():
        if fault_status == status:
            return reason
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# --- HTTP/1.1 plumbing ------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # loop.time(), the origin of every delay in the response

    @property
    def client_keeps_alive(self) -> bool:
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


class _ClientGone(Exception):
    """The client closed the connection while its response was being prepared or sent."""


class _Connection:
    """One TCP connection: its own read buffer, so that watching for EOF during a response
    can never swallow bytes of a next (pipelined) request."""

    __slots__ = ("reader", "writer", "buffer", "eof", "reset")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self.eof = False
        self.reset = False

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = await self.reader.read(_READ_SIZE)
        except OSError:  # a reset or another socket error ends the connection like EOF
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    async def wait_closed_by_client(self) -> None:
        """Return once the client has closed (EOF or error); buffer anything it sends."""
        while await self._fill():
            pass

    async def read_request(self) -> _Request | None:
        """The next request, or None when the client closed the connection between requests."""
        while self.buffer.startswith(b"\r\n"):  # tolerated before a request line (RFC 9112 2.2)
            del self.buffer[:2]
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > _MAX_HEADER_BYTES:
                raise _BadRequest(431, "request headers too large")
            if not await self._fill():
                return None
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        request_line, *header_lines = head.split("\r\n")
        try:
            method, target, version = request_line.split(" ")
        except ValueError:
            raise _BadRequest(400, "malformed request line") from None
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise _BadRequest(400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise _BadRequest(501, "chunked request bodies are not supported; send Content-Length")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest(400, "invalid Content-Length") from None
        if length < 0:
            raise _BadRequest(400, "invalid Content-Length")
        if length > _MAX_BODY_BYTES:
            raise _BadRequest(413, "request body too large")
        if length > len(self.buffer) and headers.get("expect", "").lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while len(self.buffer) < length:
            if not await self._fill():
                return None
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return _Request(method, target.split("?", 1)[0], version, headers, body, asyncio.get_running_loop().time())

    async def send(self, data: bytes) -> None:
        if self.eof or self.writer.is_closing():
            raise _ClientGone
        self.writer.write(data)
        # Only a client that reads slower than we write needs the drain round trip.
        if self.writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
            try:
                await self.writer.drain()
            except ConnectionError:
                raise _ClientGone from None

    async def flush(self) -> None:
        """Wait until everything written has left the process (not just the buffer limit)."""
        transport = self.writer.transport
        transport.set_write_buffer_limits(high=0)
        try:
            await self.writer.drain()
        except ConnectionError:
            raise _ClientGone from None

    def abort_with_reset(self) -> None:
        """Drop the connection with a TCP RST, the way a crashing upstream does."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.reset = True
        self.writer.transport.abort()


def _head(status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("connection: keep-alive" if keep_alive else "connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


# --- the server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """A behaviour with every knob resolved against the server's defaults."""

    behaviour: Behaviour
    ttft: float
    tokens_per_second: float
    latency: float
    chunk_words: int
    answer_words: int


class FakeProvider:
    """The fake provider: server, behaviour queue and counters.

    Run it with ``with FakeProvider() as p`` (own loop in a daemon thread: for sync code and
    for tests whose event loop is short-lived) or ``async with FakeProvider() as p`` (in the
    running loop). The keyword arguments are the server-wide defaults a ``Behaviour`` may
    override per request.

    Counters (``open_connections``, ``active_requests``, ``total_requests``) and the
    ``requests`` log are guarded by one lock, so any thread may read them and wait on them.
    ``max_recorded`` bounds the log (None = unbounded, 0 = keep nothing) so a long benchmark
    does not keep every prompt in memory.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        model: str = "fake",
        ttft: float = 0.0,
        tokens_per_second: float = 0.0,
        latency: float = 0.0,
        chunk_words: int = 1,
        answer_words: int = 30,
        member_id: str | None = None,
        keep_alive: bool = True,
        default: Behaviour | None = None,
        max_recorded: int | None = None,
    ) -> None:
        _check_knobs(ttft, tokens_per_second, latency, chunk_words, answer_words)
        self.port = port
        self.model = model
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second
        self.latency = latency
        self.chunk_words = chunk_words
        self.answer_words = answer_words
        self.member_id = member_id
        self.keep_alive = keep_alive

        self._cond = threading.Condition()
        self._queue: deque[Behaviour] = deque()
        self._default = default or Behaviour()
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._open_connections = 0
        self._active_requests = 0
        self._total_requests = 0

        self._server: asyncio.Server | None = None
        self._connection_tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- scripting --

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next chat-completions requests, one per request (FIFO)."""
        with self._cond:
            self._queue.extend(behaviours)

    def set_default(self, behaviour: Behaviour) -> None:
        """The behaviour used whenever the queue is empty."""
        with self._cond:
            self._default = behaviour

    def clear(self) -> None:
        """Forget queued behaviours and recorded requests (counters of live traffic stay)."""
        with self._cond:
            self._queue.clear()
            self._requests.clear()

    @property
    def pending_behaviours(self) -> int:
        with self._cond:
            return len(self._queue)

    # -- observability --

    @property
    def open_connections(self) -> int:
        with self._cond:
            return self._open_connections

    @property
    def active_requests(self) -> int:
        with self._cond:
            return self._active_requests

    @property
    def total_requests(self) -> int:
        """Chat-completions requests received since start (other paths are not counted)."""
        with self._cond:
            return self._total_requests

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded chat-completions requests, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def is_idle(self) -> bool:
        with self._cond:
            return self._open_connections == 0 and self._active_requests == 0

    def wait_until_sync(self, predicate: Callable[[FakeProvider], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every counter change)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_idle_sync(self, timeout: float = 5.0) -> bool:
        """Block until no connection is open and no request is active. Only for the threaded
        mode: in the server's own loop it would block the very loop that has to get idle."""
        return self.wait_until_sync(lambda p: p._open_connections == 0 and p._active_requests == 0, timeout)

    async def wait_until(self, predicate: Callable[[FakeProvider], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Await ``predicate(self)``, polling every few ms: works whether the server runs in
        this loop or in its own thread, without tying up an executor thread."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if predicate(self):
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.005, remaining))

    async def wait_idle(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - the brief asks for this signature
        """Await ``open_connections == 0 and active_requests == 0``; False on timeout."""
        return await self.wait_until(lambda p: p._open_connections == 0 and p._active_requests == 0, timeout)

    def _count(self, *, connections: int = 0, active: int = 0) -> None:
        with self._cond:
            self._open_connections += connections
            self._active_requests += active
            self._cond.notify_all()

    # -- lifecycle --

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._server is None:
            raise RuntimeError("the fake provider is not running")
        return f"http://{HOST}:{self.port}/v1"

    async def start(self) -> Self:
        """Listen on 127.0.0.1 (``port=0``: a free port, then ``self.port`` is the real one)."""
        if self._server is not None:
            raise RuntimeError("already started")
        self._server = await asyncio.start_server(
            self._serve_connection, HOST, self.port, backlog=4096, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Stop listening, cut every connection and wait for their handlers to finish.

        Python 3.11's ``Server.wait_closed`` does not wait for open connections, so the
        handlers are tracked and cancelled here; otherwise a stalled stream would outlive
        the server."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Loop: a connection accepted just before close() registers its handler only once
        # that handler first runs.
        while self._connection_tasks:
            tasks = list(self._connection_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def start_in_thread(self, timeout: float = 5.0) -> Self:
        """Run the server on a new event loop in a daemon thread; return once it listens."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                try:
                    loop.run_until_complete(self.start())
                except BaseException as exc:  # handed to the starting thread below
                    failure.append(exc)
                    return
                finally:
                    ready.set()
                loop.run_forever()
                loop.run_until_complete(self.aclose())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the fake provider did not start in time")
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threaded server (closing its connections) and join its thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already stopped
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start_in_thread()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- connection handling --

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connection_tasks.add(task)
        self._count(connections=1)
        connection = _Connection(reader, writer)
        try:
            while True:
                try:
                    request = await connection.read_request()
                except _BadRequest as bad:
                    body = _error_body(bad.message, "invalid_request_error", None)
                    with contextlib.suppress(_ClientGone):
                        await connection.send(
                            _head(
                                bad.status,
                                [("content-type", "application/json"), ("content-length", str(len(body)))],
                                False,
                            )
                            + body
                        )
                    break
                if request is None or not await self._dispatch(connection, request):
                    break
        except _ClientGone:
            pass
        except asyncio.CancelledError:
            if self._server is not None:  # not our own shutdown: let it propagate
                raise
        finally:
            if not connection.reset:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 0.5)
                if not writer.transport.is_closing():
                    writer.transport.abort()
            self._count(connections=-1)
            self._connection_tasks.discard(task)

    async def _dispatch(self, connection: _Connection, request: _Request) -> bool:
        """Answer one request; True if the connection stays open for another."""
        keep_alive = self.keep_alive and request.client_keeps_alive and not connection.eof
        path = request.path.rstrip("/")
        if request.method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            return await self._chat_completions(connection, request, keep_alive)
        if request.method == "GET" and path in ("/v1/models", "/models"):
            models = {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "fake-provider"}],
            }
            await connection.send(_json_response(200, _json(models).encode(), keep_alive))
            return keep_alive
        body = _error_body(
            f"Unknown request URL: {request.method} {request.path}", "invalid_request_error", "unknown_url"
        )
        await connection.send(_json_response(404, body, keep_alive))
        return keep_alive

    def _admit(self, body: dict[str, Any]) -> RecordedRequest:
        """Take the next behaviour and count and record the request, in one locked step so
        that a concurrent test never sees a request counted but not yet recorded."""
        with self._cond:
            behaviour = self._queue.popleft() if self._queue else self._default
            record = RecordedRequest(body=body, behaviour=behaviour, received_at=time.monotonic())
            self._requests.append(record)
            self._total_requests += 1
            self._active_requests += 1
            self._cond.notify_all()
        return record

    async def _chat_completions(self, connection: _Connection, request: _Request, keep_alive: bool) -> bool:
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            error = _error_body("The request body is not a JSON object.", "invalid_request_error", "invalid_json")
            await connection.send(_json_response(400, error, keep_alive))
            return keep_alive

        if body.get("stream") and request.version != "HTTP/1.1":
            keep_alive = False  # without chunked encoding a stream can only end by closing
        record = self._admit(body)
        response = asyncio.ensure_future(self._respond(connection, request, record, keep_alive))
        watcher = asyncio.ensure_future(connection.wait_closed_by_client())
        try:
            # The watcher makes a client's hang-up visible even while the response sleeps
            # (ttft, latency, stall), so the request ends at once instead of at its next write.
            await asyncio.wait((response, watcher), return_when=asyncio.FIRST_COMPLETED)
            if response.done():
                try:
                    record.outcome = response.result()
                except _ClientGone:
                    record.outcome = Outcome.CLIENT_CLOSED
                if connection.reset:
                    record.outcome = Outcome.RESET
            else:
                record.outcome = Outcome.CLIENT_CLOSED
        except asyncio.CancelledError:
            record.outcome = Outcome.SERVER_STOPPED
            raise
        finally:
            for task in (response, watcher):
                task.cancel()
            # Wait for both so the reader is free for the next request; asyncio.wait never
            # raises, so a cancellation of this task is not swallowed here.
            await asyncio.wait((response, watcher))
            self._count(active=-1)
        return keep_alive and record.outcome in (Outcome.COMPLETED, Outcome.HTTP_ERROR) and not connection.eof

    def _plan(self, behaviour: Behaviour) -> _Plan:
        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        return _Plan(
            behaviour=behaviour,
            ttft=pick(behaviour.ttft, self.ttft),
            tokens_per_second=pick(behaviour.tokens_per_second, self.tokens_per_second),
            latency=pick(behaviour.latency, self.latency),
            chunk_words=pick(behaviour.chunk_words, self.chunk_words),
            answer_words=pick(behaviour.answer_words, self.answer_words),
        )

    async def _respond(
        self, connection: _Connection, request: _Request, record: RecordedRequest, keep_alive: bool
    ) -> Outcome:
        plan = self._plan(record.behaviour)
        behaviour = plan.behaviour
        start = request.received_at
        await _sleep_until(start + behaviour.header_delay)

        if behaviour.fault in _HTTP_FAULTS:
            status, _reason_phrase, error_type, code, message = _HTTP_FAULTS[behaviour.fault]
            headers = [("content-type", "application/json"), ("x-request-id", _new_id("req_"))]
            if behaviour.fault is Fault.RATE_LIMIT and behaviour.retry_after is not None:
                headers.append(("retry-after", behaviour.retry_after))
            body = _error_body(message, error_type, code)
            headers.append(("content-length", str(len(body))))
            await connection.send(_head(status, headers, keep_alive) + body)
            return Outcome.HTTP_ERROR

        body = record.body
        reply = script_reply(body, behaviour, answer_words=plan.answer_words, member_id=self.member_id)
        usage = _usage(prompt_tokens(record.messages), reply.completion_tokens)
        completion_id = _new_id("chatcmpl-")
        created = int(time.time())
        if body.get("stream"):
            return await self._stream(
                connection, request, plan, reply, usage, completion_id, created, keep_alive, _include_usage(body)
            )

        await _sleep_until(start + max(behaviour.header_delay, plan.latency))
        payload = _completion_body(completion_id, created, self.model, reply, usage)
        if behaviour.fault is Fault.MALFORMED_CHUNK:
            payload = payload[: len(payload) // 2]  # a truncated JSON document, correctly framed
        head = _head(
            200,
            [
                ("content-type", "application/json"),
                ("content-length", str(len(payload))),
                ("x-request-id", completion_id),
            ],
            keep_alive,
        )
        if behaviour.fault in (Fault.RESET, Fault.STALL):
            await connection.send(head + payload[: len(payload) // 2])
            return await _break_off(connection, behaviour.fault)
        await connection.send(head + payload)
        return Outcome.COMPLETED

    async def _stream(
        self,
        connection: _Connection,
        request: _Request,
        plan: _Plan,
        reply: Reply,
        usage: dict[str, int],
        completion_id: str,
        created: int,
        keep_alive: bool,
        include_usage: bool,
    ) -> Outcome:
        # HTTP/1.1 streams are chunked so the connection can be reused; an HTTP/1.0 stream
        # ends by closing the connection (keep_alive is already False for it).
        chunked = request.version == "HTTP/1.1"
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("x-request-id", completion_id),
        ]
        if chunked:
            headers.append(("transfer-encoding", "chunked"))
        await connection.send(_head(200, headers, keep_alive))

        frames = _ChunkFrames(completion_id, created, self.model, include_usage)
        if reply.tool_call is not None:
            deltas = [frames.delta(delta) for delta in _tool_call_deltas(reply.tool_call)]
        else:
            deltas = [frames.content(piece) for piece in _split_words(reply.text or "", plan.chunk_words)]
            # The role delta goes out with the first content rather than with the headers:
            # agno starts its time-to-first-token clock on any content, even "".
            role = frames.delta({"role": "assistant", "content": "", "refusal": None})
            deltas = [role + deltas[0], *deltas[1:]] if deltas else [role]
        tail = [frames.finish(reply.finish_reason)]
        if include_usage:
            tail.append(frames.usage(usage))
        tail.append(_DONE)

        # Delta i is due ttft + i / tokens_per_second after the request arrived; the tail
        # (finish, usage, [DONE]) goes out with the last delta.
        first_due = request.received_at + plan.ttft
        interval = 1.0 / plan.tokens_per_second if plan.tokens_per_second > 0 else 0.0
        schedule = [(first_due + i * interval, frame) for i, frame in enumerate(deltas)]
        last_due = schedule[-1][0]
        behaviour = plan.behaviour
        fault = behaviour.fault
        if fault in (Fault.RESET, Fault.STALL):
            schedule = schedule[: behaviour.fault_after]
        else:
            if fault is Fault.MALFORMED_CHUNK:
                cut = min(behaviour.fault_after, len(schedule))
                schedule.insert(cut, (schedule[cut - 1][0] if cut else first_due, _MALFORMED))
            schedule += [(last_due, frame) for frame in tail]

        if fault in (Fault.RESET, Fault.STALL):
            await _send_paced(connection, schedule, chunked, end=b"")
            return await _break_off(connection, fault)
        await _send_paced(connection, schedule, chunked, end=b"0\r\n\r\n" if chunked else b"")
        return Outcome.COMPLETED


def _json_response(status: int, body: bytes, keep_alive: bool) -> bytes:
    return _head(status, [("content-type", "application/json"), ("content-length", str(len(body)))], keep_alive) + body


async def _send_paced(connection: _Connection, schedule: list[tuple[float, bytes]], chunked: bool, end: bytes) -> None:
    """Send each frame at its due time, coalescing all frames already due into one write,
    and ``end`` (the chunked-body terminator, if any) with the last write.

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
        data = b"".join(batch)
        if chunked:
            data = _chunked(data)
        await connection.send(data + end if index == len(schedule) else data)
    if not schedule and end:
        await connection.send(end)


async def _break_off(connection: _Connection, fault: Fault) -> Outcome:
    """End a response the wrong way: a TCP reset, or silence until the client gives up.

    A stall just never returns: the connection's EOF watcher ends the request when the
    client hangs up, and server shutdown cancels it."""
    if fault is Fault.RESET:
        await connection.flush()  # what was "sent" must reach the client before the RST
        connection.abort_with_reset()
        return Outcome.RESET
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable: a stall only ends by cancellation")


# --- command line ---------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fake_provider",
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
    args = _parse_args(argv)
    _raise_fd_limit()
    asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
