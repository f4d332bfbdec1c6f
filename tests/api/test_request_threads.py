"""A request's thread-sensitive work runs on a thread lent to it (chat.api.request_threads): one
thread per request at a time, reused by later requests, none started per request."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from chat.api.request_threads import RequestThreads

SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": []}


async def call(app) -> None:
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    await app(dict(SCOPE), receive, send)


def recording(threads: list[int], *, calls: int = 2, then=None):
    """An ASGI app whose request makes `calls` thread-sensitive calls, noting the thread of each."""
    async def app(scope, receive, send):
        for _ in range(calls):
            threads.append(await sync_to_async(threading.get_ident)())
        if then is not None:
            await then()
    return app


class StartedThreads:
    """Counts the threads started while it is open."""

    def __init__(self, monkeypatch) -> None:
        self.names: list[str] = []
        start = threading.Thread.start

        def counted(thread):
            self.names.append(thread.name)
            return start(thread)
        monkeypatch.setattr(threading.Thread, "start", counted)


async def test_later_requests_reuse_the_thread_and_a_requests_calls_share_it(monkeypatch):
    threads: list[int] = []
    app = RequestThreads(recording(threads))
    await call(app)
    started = StartedThreads(monkeypatch)
    for _ in range(5):
        await call(app)
    assert len(set(threads)) == 1 and len(threads) == 12
    assert threads[0] != threading.get_ident()  # not the event loop's thread
    assert started.names == []


@pytest.mark.django_db(transaction=True)  # a reused thread may hold a connection: Django's signals check it
async def test_djangos_requests_start_no_thread_each(api, monkeypatch):
    """The whole HTTP path (Django's handler, its request signals, the middleware, a view): once warm,
    requests start no thread. Without RequestThreads each one started two (its own, and a joiner)."""
    for _ in range(3):
        assert (await api.get("/health")).status_code == 200
    started = StartedThreads(monkeypatch)
    for _ in range(10):
        assert (await api.get("/health")).status_code == 200
    # The database pool's threads belong to the process (chat.storage.executor), whenever they start.
    assert [name for name in started.names if not name.startswith("cirkelline-db")] == []


async def test_requests_in_flight_together_each_have_their_own_thread():
    """Two requests whose thread-sensitive calls wait for each other: on one shared thread they could
    never both be running (the barrier would break)."""
    both = threading.Barrier(2, timeout=10)

    async def app(scope, receive, send):
        await sync_to_async(both.wait)()

    lending = RequestThreads(app)
    await asyncio.wait_for(asyncio.gather(call(lending), call(lending)), 15)
    assert not both.broken
    assert len(lending.idle) == 2


async def test_a_burst_leaves_at_most_keep_threads_idle():
    together = threading.Barrier(5, timeout=10)

    async def app(scope, receive, send):
        await sync_to_async(together.wait)()

    lending = RequestThreads(app, keep=2)
    await asyncio.wait_for(asyncio.gather(*(call(lending) for _ in range(5))), 15)
    assert not together.broken
    assert len(lending.idle) == 2


async def test_a_task_that_outlives_its_request_still_runs_thread_sensitive_code():
    """A request may start work that goes on after it (a run whose client left): its thread-sensitive
    calls get a thread of their own, never the lent one, which the next request may be using."""
    request_threads: list[int] = []
    later: list[int] = []
    go_on = asyncio.Event()
    tasks = []

    async def start_work():
        async def work():
            await go_on.wait()
            later.append(await sync_to_async(threading.get_ident)())
        tasks.append(asyncio.get_running_loop().create_task(work()))

    lending = RequestThreads(recording(request_threads, then=start_work))
    await call(lending)
    go_on.set()
    await asyncio.wait_for(tasks[0], 10)
    assert later and later[0] != request_threads[0]
    assert len(lending.idle) == 1
