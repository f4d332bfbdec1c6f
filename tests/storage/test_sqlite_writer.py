"""SQLite's write transactions of one process wait for each other on a lock of the process
(cirkelline_site/db/sqlite3), not in SQLite's busy handler, which sleeps up to 100 ms a time.

Each test gives the waiting thread's connection a busy timeout of 0: if its BEGIN reached SQLite
while the other thread's transaction held the file's write lock, it would fail at once with
"database is locked". It succeeds only if it waited for the process's lock, which the other
thread released when its transaction ended."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from chat.models import ChatSession

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10.0  # bounds every wait of these tests; none is reached when the lock works


@pytest.fixture(autouse=True)
def _sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("the process's write lock is the SQLite backend's (PostgreSQL has row locks)")


class _Observed:
    """The backend's lock, telling when a thread has started to wait for it."""

    def __init__(self, lock) -> None:
        self.lock = lock
        self.waiting = threading.Event()

    def acquire(self, *args, **kwargs):
        if self.lock.locked():
            self.waiting.set()
        return self.lock.acquire(*args, **kwargs)

    def release(self):
        self.lock.release()

    def locked(self):
        return self.lock.locked()


@pytest.fixture
def observed(monkeypatch) -> _Observed:
    from cirkelline_site.db.sqlite3 import base

    lock = _Observed(base._writer)
    monkeypatch.setattr(base, "_writer", lock)
    return lock


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list]:
    """`work` in a thread of its own whose connection never waits in SQLite's busy handler."""
    outcome: list = []

    def run():
        from django.db import connections

        try:
            connection.ensure_connection()
            connection.connection.execute("PRAGMA busy_timeout = 0")
            outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _name(session_id: str, user, name: str) -> str:
    with transaction.atomic():
        ChatSession.objects.update_or_create(session_id=session_id, user=user, defaults={"session_name": name})
    return name


def test_a_second_writer_waits_for_the_first_to_commit_then_writes(observed, alice):
    with transaction.atomic():
        ChatSession.objects.create(session_id="first", user=alice, session_name="mine")
        thread, outcome = _in_thread(lambda: _name("second", alice, "theirs"))
        assert observed.waiting.wait(WAIT), "the second writer never waited for the process's lock"
    thread.join(WAIT)
    assert outcome == ["theirs"]
    assert sorted(ChatSession.objects.values_list("session_id", "session_name")) == [
        ("first", "mine"), ("second", "theirs")]
    assert not observed.locked()


@pytest.mark.parametrize("ending", ["rollback", "close"])
def test_a_transaction_ended_without_commit_lets_the_next_writer_in(observed, alice, ending):
    """Rolled back, or its connection closed mid-transaction (as close_old_connections does with a
    broken connection): the process's lock is free again and the waiting writer writes."""
    with pytest.raises(RuntimeError), transaction.atomic():
        ChatSession.objects.create(session_id="gone", user=alice, session_name="never committed")
        thread, outcome = _in_thread(lambda: _name("next", alice, "written"))
        assert observed.waiting.wait(WAIT)
        if ending == "close":
            connection.close()
        raise RuntimeError("the transaction fails")
    thread.join(WAIT)
    assert outcome == ["written"]
    assert list(ChatSession.objects.values_list("session_id", flat=True)) == ["next"]
    assert not observed.locked()
