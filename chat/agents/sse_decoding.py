"""Server-sent events as the openai SDK reads a streamed answer: the decoder and each event's payload.

Split from the lean path's HTTP (chat.agents.openai_wire), which feeds it the body's bytes;
tests/agents/test_openai_lean.py checks it against the SDK's own decoder, and
tests/agents/test_openai_lean_drift.py pins the SDK code it reproduces.
"""

from __future__ import annotations

import json
from typing import Any


class SseDecoder:
    """Server-sent events from bytes, as the SDK's `SSEDecoder` over `_SSELineDecoder` decodes them.

    Lines end at CR, LF or CRLF (a CR at the end of a piece waits for the next piece, which may
    start with its LF); each line is UTF-8; a blank line dispatches the event collected so far.
    Returns (event, data) pairs.
    """

    __slots__ = ("_buffer", "_event", "_data", "_last_event_id", "_retry")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._last_event_id: str | None = None
        self._retry: int | None = None

    def feed(self, piece: bytes) -> list[tuple[str | None, str]]:
        buffer = self._buffer + piece if self._buffer else piece
        # Complete lines end at the last LF, or at a CR that is not the last byte.
        cut = max(buffer.rfind(b"\n"), buffer.rfind(b"\r", 0, len(buffer) - 1))
        if cut < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[cut + 1:]
        return self._lines(buffer[: cut + 1].splitlines())

    def finish(self) -> list[tuple[str | None, str]]:
        rest, self._buffer = self._buffer, b""
        return self._lines(rest.splitlines()) if rest else []

    def _lines(self, lines: list[bytes]) -> list[tuple[str | None, str]]:
        events = []
        for raw in lines:
            line = raw.decode("utf-8")
            if not line:
                if not self._event and not self._data and not self._last_event_id and self._retry is None:
                    continue
                events.append((self._event or None, "\n".join(self._data)))
                self._event, self._data, self._retry = None, [], None  # the last event id stays (SSE spec)
                continue
            if line[0] == ":":
                continue
            field, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if field == "data":
                self._data.append(value)
            elif field == "event":
                self._event = value
            elif field == "id":
                if "\0" not in value:
                    self._last_event_id = value
            elif field == "retry":
                try:
                    self._retry = int(value)
                except (TypeError, ValueError):
                    pass
        return events


class StreamError(Exception):
    """An error object the provider sent inside the stream (the SDK raises it as its APIError)."""


def payloads(event: str | None, data: str) -> Any:
    """A chunk's parsed payload, or StreamError, as the SDK's AsyncStream (legacy mode) treats it."""
    payload = json.loads(data)
    if event and event.startswith("thread."):
        if event == "error" and isinstance(payload, dict) and payload.get("error"):
            raise StreamError(stream_error_message(payload))
        return {"data": payload, "event": event}
    if isinstance(payload, dict) and payload.get("error"):
        raise StreamError(stream_error_message(payload))
    return payload


def stream_error_message(payload: dict) -> str:
    error = payload.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return message
