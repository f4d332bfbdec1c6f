"""The request id: accepted from X-Request-ID when sane, generated otherwise, on every log line.

Two context variables carry the ids. asyncio copies the context into every task at its
creation, so a run task created while a request is being handled carries that request's id
into every log line of the run (member runs, provider retries, the final write) without
anything passing it along; `bind_run` adds the run's id once the run task starts.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
# A token a proxy or client may send: short, and nothing that could split a log line or a
# header (no spaces, quotes, newlines or control characters).
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id_var: ContextVar[str | None] = ContextVar("cirkelline_request_id", default=None)
run_id_var: ContextVar[str | None] = ContextVar("cirkelline_run_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def sanitize(incoming: str | None) -> str:
    """`incoming` if it is a sane token, else a freshly generated id."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return new_request_id()


def adopt(incoming: str | None = None) -> str:
    """Make (a sanitised) `incoming`, or a new id, the current request id; return it.

    For transports outside Django's middleware (the websocket consumer, per connection).
    """
    value = sanitize(incoming)
    request_id_var.set(value)
    return value


def current_request_id() -> str | None:
    return request_id_var.get()


def bind_run(run_id: str) -> None:
    """Name the run on every log line of the current task and of the tasks it creates."""
    run_id_var.set(run_id)


class RequestContextFilter(logging.Filter):
    """Puts `request_id` and `run_id` ("-" when unset) on every record passing a handler.

    Values a record already has (passed with `extra=`) are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or "-"
        if getattr(record, "run_id", None) is None:
            record.run_id = run_id_var.get() or "-"
        return True
