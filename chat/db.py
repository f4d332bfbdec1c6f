"""Running ORM work off the event loop.

Every database call of the run path is a small sync function run here, in a dedicated
thread pool, so the event loop never waits on the database. Why not Django's async ORM
(`sync_to_async(thread_sensitive=True)`): under ASGI its thread belongs to the request, and
a run outlives its request when the client disconnects; the final usage write must still
happen then. Threads here belong to the process.

Connections: on PostgreSQL (`CONN_MAX_AGE=0` + psycopg pool) each call checks a connection
out of the pool and returns it at the end; on SQLite each thread keeps its connection.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connections

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.CIRKELLINE_DB_THREADS, thread_name_prefix="cirkelline-db")
    return _executor


def _call(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    try:
        return fn(*args, **kwargs)
    finally:
        # Return pooled connections; drop broken ones. Persistent SQLite handles stay.
        close_old_connections()


async def run_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run the sync ORM function `fn` in the database thread pool and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_executor(), functools.partial(_call, fn, args, kwargs))


def close_all() -> None:
    """Close this thread's connections (tests and shutdown)."""
    connections.close_all()
