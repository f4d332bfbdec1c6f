"""This process's lifecycle as operators and proxies see it: serving, or draining (shutting down).

The run service starts a drain (chat.runs.drain) and marks it here; /ready answers 503 from that
moment on, so a load balancer stops sending new work to the process at once. A module of its own
at the ground floor: observability imports nothing else from chat, and the run service imports it.
"""

from __future__ import annotations

import time

_draining_since: float | None = None


def mark_draining() -> None:
    global _draining_since
    if _draining_since is None:
        _draining_since = time.monotonic()


def draining() -> bool:
    return _draining_since is not None


def draining_for() -> float:
    """Seconds since the drain began (0 while serving)."""
    return 0.0 if _draining_since is None else time.monotonic() - _draining_since


def reset() -> None:
    """Serving again (tests)."""
    global _draining_since
    _draining_since = None
