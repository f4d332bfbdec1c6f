"""How one chat-completions request of the fake provider behaves: its script, its fault, its outcome.

Plain data with named constructors, so a test reads as the scenario it sets up
(``Behaviour.rate_limited(retry_after=3)``, ``Behaviour.reset(after=2)``); the server turns a
behaviour into bytes on the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final


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


@dataclass(frozen=True, slots=True)
class HttpFault:
    """The error response of an HTTP-level fault, in OpenAI's error format."""

    status: int
    error_type: str
    code: str | None
    message: str


HTTP_FAULTS: Final[dict[Fault, HttpFault]] = {
    Fault.RATE_LIMIT: HttpFault(
        429, "requests", "rate_limit_exceeded",
        "Rate limit reached for requests (fake provider). Please try again later.",
    ),
    Fault.SERVER_ERROR: HttpFault(
        500, "server_error", None, "The server had an error while processing your request (fake provider)."
    ),
    Fault.UNAVAILABLE: HttpFault(
        503, "server_error", "service_unavailable",
        "The engine is currently overloaded, please try again later (fake provider).",
    ),
    Fault.OVERLOADED: HttpFault(529, "overloaded_error", "overloaded", "Overloaded (fake provider)."),
    Fault.BAD_REQUEST: HttpFault(400, "invalid_request_error", None, "Invalid request (fake provider)."),
    Fault.UNAUTHORIZED: HttpFault(
        401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided (fake provider)."
    ),
    Fault.FORBIDDEN: HttpFault(403, "permission_error", None, "Not allowed to use this model (fake provider)."),
    Fault.NOT_FOUND: HttpFault(
        404, "invalid_request_error", "model_not_found", "The model does not exist (fake provider)."
    ),
    Fault.TOO_LARGE: HttpFault(413, "invalid_request_error", "request_too_large", "Request too large (fake provider)."),
    Fault.UNPROCESSABLE: HttpFault(422, "invalid_request_error", None, "Unprocessable (fake provider)."),
}
_STATUS_FAULTS: Final = {error.status: fault for fault, error in HTTP_FAULTS.items()}
STREAM_BREAKS: Final = frozenset({Fault.RESET, Fault.STALL})


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
        check_knobs(self.ttft, self.tokens_per_second, self.latency, self.chunk_words, self.answer_words)

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


def check_knobs(
    ttft: float | None,
    tokens_per_second: float | None,
    latency: float | None,
    chunk_words: int | None,
    answer_words: int | None,
) -> None:
    """Reject timing and size knobs no response could follow (negative times, empty deltas)."""
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
