"""Django's request threads, kept: the thread that runs a request's thread-sensitive work is reused
by later requests instead of being started and joined for each one.

Under ASGI, Django's handler opens a `ThreadSensitiveContext` per request, and asgiref gives each
such context a new one-thread executor the first time the request calls sync code thread-
sensitively, which every request does (Django's `request_started` and `request_finished` signals
have sync receivers; so do `response.close()`, a session's load and the lazy user). So each request
started a thread, the event loop blocking in `Thread.start` until the new thread ran, and ended
by starting another thread to join the first. On a 2-core machine that was about a third of the
event loop's time for a small API request (docs/PERFORMANCE.md, "Test suite").

`RequestThreads` wraps Django's ASGI application and opens the request's context itself, with an
executor it lends to that request alone: one thread, one request at a time, as before, so a
request's thread-sensitive calls still share one thread and its database connection (which
`request_finished` closes at the request's end on PostgreSQL, `CONN_MAX_AGE=0`, as before; on
SQLite the thread keeps it, as the database pool's threads do, where a thread per request used to
open one each time). When the request ends the executor goes back to the idle list (at most
`keep` of them; the others are shut down), so a burst of N simultaneous requests leaves `keep`
threads behind, not N. A thread-sensitive call a cancelled request left running delays the next
request lent that thread until it returns (before, it held a thread of its own).

The executor is put into asgiref's map from context to executor (`SyncToAsync.
context_to_thread_executor`, the map asgiref fills itself) and taken out before the context ends,
so asgiref neither shuts it down nor hands it to anything that outlives the request: a task the
request started that makes a thread-sensitive call after the request ended gets a thread of its
own, as it did before (asgiref's executor-owning `ThreadSensitiveContext(executor=...)` refuses
such calls instead, which a run that outlives its request would hit). tests/api/test_django_drift.py
pins the asgiref code this relies on.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.db import connections

KEEP = 16


_instances: "weakref.WeakSet[RequestThreads]" = weakref.WeakSet()


def release_idle_threads() -> None:
    """End every idle request thread of the process (tests: a thread kept from one test carries its
    database connection into the next, which pytest-django's blocker refuses to let Django check)."""
    for instance in list(_instances):
        idle, instance.idle = instance.idle, []
        for executor in idle:
            executor.submit(connections.close_all)  # on that thread: its own connections
            executor.shutdown(wait=True)


class RequestThreads:
    """ASGI middleware for Django's HTTP application: each request's thread-sensitive work runs on a
    thread lent to it for the request (a reused one when one is idle)."""

    def __init__(self, app, *, keep: int = KEEP) -> None:
        self.app = app
        self.keep = keep
        self.idle: list[ThreadPoolExecutor] = []
        _instances.add(self)

    async def __call__(self, scope, receive, send) -> None:
        executor = self.idle.pop() if self.idle else \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="cirkelline-request")
        try:
            async with ThreadSensitiveContext() as context:
                SyncToAsync.context_to_thread_executor[context] = executor
                try:
                    await self.app(scope, receive, send)
                finally:
                    # Before the context ends: asgiref shuts down (and joins) what it finds there.
                    SyncToAsync.context_to_thread_executor.pop(context, None)
        finally:
            if len(self.idle) < self.keep:
                self.idle.append(executor)
            else:
                executor.shutdown(wait=False)  # its thread ends after the work already queued
