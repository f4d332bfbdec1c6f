"""Django's SQLite backend, with a process's write transactions queued on a lock of the process.

SQLite has one writer at a time. With `transaction_mode` IMMEDIATE every transaction takes the
write lock at BEGIN, and a thread that finds it taken waits in SQLite's busy handler: it sleeps
and tries again, 1, 2, 5 ... then 100 ms at a time, until `timeout`. Under a burst the database
threads of one process (chat.storage.executor) are such waiters: a thread may sleep through
moments the lock was free while a newer one takes it, so a run's final write waited up to
1.3 s with 200 runs ending together (docs/PERFORMANCE.md). Here a transaction first takes a
`threading.Lock` of the process (released at COMMIT or ROLLBACK, or when the connection
closes): a thread waiting on it wakes as soon as the lock is released. SQLite's own lock still
decides between processes (tests' servers, management commands).

Written here because neither Django nor the standard library's sqlite3 module offer a busy
handler other than SQLite's sleeping one.
"""

from __future__ import annotations

import threading

from django.db.backends.sqlite3 import base

# One per process: every connection of every thread of the process writes the same file.
_writer = threading.Lock()


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_writer = False

    def _start_transaction_under_autocommit(self):
        # Bounded like SQLite's own wait; past it, BEGIN meets SQLite's busy timeout as before.
        held = _writer.acquire(timeout=self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            if held:
                _writer.release()
            raise
        self._holds_writer = held

    def _release_writer(self) -> None:
        if self._holds_writer:
            self._holds_writer = False
            _writer.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_writer()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_writer()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_writer()
