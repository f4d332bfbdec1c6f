"""Every refusal the app raises: one base, `CirkellineError`, carrying an HTTP status and a sentence.

Transports turn these into responses in one place each, from the same classes: the HTTP API in
chat/api/errors.py (`{"detail": ...}` with the status), the websocket in chat/ws/frames.py (an
error frame with the same status and sentence). `extra` holds fields a client needs beside the
sentence (`retry_after`, the run's `status`, an upload id), sent by both; a `retry_after` on a 429
also becomes a `Retry-After` header.

Not found and not yours are one answer (`NotFound`, 404): a user never learns whether another
user's session or run exists.
"""

from __future__ import annotations

import math
from typing import Any


class CirkellineError(Exception):
    """A refusal with an HTTP status, a sentence for a person (`detail`) and optional extra fields."""

    status: int = 500
    detail: str = "Internal server error."

    def __init__(self, status: int | None = None, detail: str | None = None, **extra: Any) -> None:
        self.status = type(self).status if status is None else status
        self.detail = type(self).detail if detail is None else detail
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(CirkellineError):
    """What the client sent cannot be run or stored: 400, or 403/413/415/429 as the check says."""

    status = 400
    detail = "Bad request."


class AuthError(CirkellineError):
    """No valid credentials (401), or a cookie-authenticated write that fails the CSRF check (403)."""

    status = 401
    detail = "Authentication credentials were not provided."


class NotFound(CirkellineError):
    """Not there, or someone else's (never told apart)."""

    status = 404
    detail = "Not found."

    def __init__(self, key: str = "") -> None:
        super().__init__()
        self.key = key


class TeamNotFound(NotFound):
    detail = "Team not found."


class SessionNotFound(NotFound):
    detail = "Session not found."


class RunNotFound(NotFound):
    detail = "Run not found."


class RunAlreadyEnded(CirkellineError):
    """A cancel for a run that has already ended; `run_status` is how it ended."""

    status = 409

    def __init__(self, run_status: str) -> None:
        super().__init__(detail=f"The run has already ended ({run_status}).")
        self.run_status = run_status
        # The HTTP body's `status` is the run's (the response's own status is 409); the
        # websocket frame, whose `status` is the HTTP one, calls it `run_status`.
        self.extra = {"status": run_status}


class RunNotPaused(CirkellineError):
    """A continue for a run that is not waiting for its user: running (maybe continued already),
    ended, or expired (paused longer than CIRKELLINE_PAUSE_TTL_SECONDS). `run_status` says which."""

    status = 409

    def __init__(self, run_status: str) -> None:
        if run_status == "expired":
            detail = ("The run waited for your answer too long and has expired; send your message again to "
                      "start a new run.")
        else:
            detail = f"The run is not waiting for an answer ({run_status})."
        super().__init__(detail=detail)
        self.run_status = run_status
        self.extra = {"status": run_status}


class RunNotEnded(CirkellineError):
    """Feedback on a run still in progress: its answer can be rated once it has ended."""

    status = 409
    detail = "The run has not ended yet: rate its answer once it is complete."


class RunUnreachable(CirkellineError):
    """A cancel for a run that is live in another server process, with no Redis to reach it through."""

    status = 503
    detail = ("The run is in progress in another server process, which this one cannot reach (cancelling "
              "across processes needs Redis); retry, or let it finish.")

    def __init__(self) -> None:
        super().__init__(retry_after=5)


class AdmissionRefused(CirkellineError):
    """Too many runs (the user's, or this process's): retry after `retry_after` seconds."""

    status = 429

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail=detail, retry_after=retry_after)
        self.retry_after = retry_after


class ServerDraining(CirkellineError):
    """This server process is shutting down (SIGTERM: chat.runs.drain): it starts no new run; the
    client retries after `retry_after` seconds, which a proxy sends to another process."""

    status = 503
    detail = ("This server is restarting and accepts no new runs; please retry in a moment (another server "
              "will take it).")

    def __init__(self, retry_after: float = 2) -> None:
        super().__init__(retry_after=retry_after)
        self.retry_after = retry_after


class BudgetExceeded(CirkellineError):
    """The user's monthly budget is used up (metrics.budgets.budget_refusal): no new run starts
    until next month or until staff raise the limit. Runs already in flight finish."""

    status = 402

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


class LoginThrottled(CirkellineError):
    """Too many failed logins for a username or from an address (chat.identity.login_throttle)."""

    status = 429

    def __init__(self, scope: str, wait: float) -> None:
        self.scope = scope
        self.wait = max(1, math.ceil(wait))
        super().__init__(detail=f"Too many failed logins for this {scope}; try again later.")
