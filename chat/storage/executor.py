"""Running ORM work off the event loop: `run_db`, asgiref's sync_to_async on a process-wide pool.

Every database call of the run path is a small sync function run here, so the event loop never
waits on the database. It is `sync_to_async(fn, thread_sensitive=False, executor=<pool>)`, not
Django's default `thread_sensitive=True`: under ASGI a thread-sensitive call runs in the thread
that belongs to the request, and a run outlives its request when the client disconnects; its
final usage write must still happen then. The pool's threads belong to the process.

Connections: on PostgreSQL (`CONN_MAX_AGE=0` + psycopg pool) each call checks a connection out
of the pool and returns it at the end; on SQLite each thread keeps its connection.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from chat.observability import prom

T = TypeVar("T")

_call_in_pool: Callable[..., Any] | None = None


def _call(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    try:
        return fn(*args, **kwargs)
    finally:
        # Return pooled connections; drop broken ones. Persistent SQLite handles stay.
        close_old_connections()


def _pooled() -> Callable[..., Any]:
    global _call_in_pool
    if _call_in_pool is None:
        pool = ThreadPoolExecutor(max_workers=settings.CIRKELLINE_DB_THREADS, thread_name_prefix="cirkelline-db")
        prom.register_db_queue_depth(pool._work_queue.qsize)  # sampled at scrape time, nothing per call
        _call_in_pool = sync_to_async(_call, thread_sensitive=False, executor=pool)
    return _call_in_pool


async def run_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run the sync ORM function `fn` in the database thread pool and await its result."""
    return await _pooled()(fn, args, kwargs)
