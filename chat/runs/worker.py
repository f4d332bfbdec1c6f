"""This server process as a worker: the identity written on every run it owns.

A run's usage row names its worker (`host:pid:nonce`) from the moment the run is admitted, so
that any process can tell whose runs are live: the random nonce tells a restarted process from
its previous incarnation even when it gets the same pid (a container's process is always pid 1).
"""

from __future__ import annotations

import os
import secrets
import socket

_identity: tuple[int, str] | None = None


def worker_id() -> str:
    """`host:pid:nonce` of this process (a new one after a fork)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        host = socket.gethostname()[:80] or "localhost"
        _identity = (pid, f"{host}:{pid}:{secrets.token_hex(4)}")
    return _identity[1]


def parse(worker: str) -> tuple[str, int, str] | None:
    """(host, pid, nonce) of a worker id, or None when it is not one."""
    host, sep, rest = worker.rpartition(":")
    host, sep2, pid = host.rpartition(":")
    if not (sep and sep2 and pid.isdigit()):
        return None
    return host, int(pid), rest
