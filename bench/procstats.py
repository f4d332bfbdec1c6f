"""Server-side figures read from outside the server: /proc, the loop-lag files, PostgreSQL.

Why from outside: the numbers must include everything the server processes do (worker
children of ``uvicorn --workers 2`` too) and must not be produced by the code under test.
The one figure only the server can give, its event-loop lag, comes from the files that
``bench.loopstats`` writes when the server runs with ``CIRKELLINE_STATS_DIR``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 once it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """VmRSS of one process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it (e.g. uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


@dataclass
class CpuSnapshot:
    """CPU seconds per pid, so processes that come or go between snapshots are handled."""

    per_pid: dict[int, float]

    @classmethod
    def take(cls, pids: Iterable[int]) -> CpuSnapshot:
        return cls({pid: cpu_seconds(pid) for pid in pids})

    def since(self, earlier: CpuSnapshot) -> float:
        return sum(value - earlier.per_pid.get(pid, 0.0) for pid, value in self.per_pid.items())


@dataclass
class Sampler:
    """Samples RSS of a process tree (and optionally a DB connection count) in a thread.

    A thread, not a task: the harness's own event loop may be busy, and /proc reads are
    cheap enough (a few per interval) not to disturb a 2-core box.
    """

    pids: Callable[[], list[int]]
    interval: float = 0.2
    db_connections: Callable[[], int | None] | None = None
    rss_peak: int = 0
    rss_samples: list[int] = field(default_factory=list)
    db_peak: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = sum(rss_bytes(pid) for pid in self.pids())
        self.rss_samples.append(rss)
        self.rss_peak = max(self.rss_peak, rss)
        if self.db_connections is not None:
            count = self.db_connections()
            if count is not None:
                self.db_peak = count if self.db_peak is None else max(self.db_peak, count)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._sample()


def total_rss(pids: Iterable[int]) -> int:
    return sum(rss_bytes(pid) for pid in pids)


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full
    (TcpExt ListenOverflows, machine-wide): a server whose accept backlog is too small for a
    burst of N connects shows up here, and its clients wait for SYN retransmits (1 s, 3 s, ...)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(fields["ListenOverflows"]) if "ListenOverflows" in fields else None
    return None


# --- loop lag (bench.loopstats files) -----------------------------------------------------------


def read_loop_stats(directory: Path) -> dict[int, dict[str, Any]]:
    """The latest ``stats-<pid>.json`` of every server process, by pid."""
    stats = {}
    for path in directory.glob("stats-*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # written by rename, so this is a file that vanished with its process
        stats[int(data["pid"])] = data
    return stats


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def start_loop_window(directory: Path, pids: Iterable[int], timeout: float = 5.0) -> float:
    """Touch ``reset`` and wait until every process has started a new window (≤ ~1 s).

    The monitors look at ``reset`` once a second, so without the wait the first second of
    a round would be measured in the previous window."""
    marker = directory / "reset"
    marker.touch()
    touched = marker.stat().st_mtime
    expected = set(pids)

    def all_reset() -> bool:
        stats = read_loop_stats(directory)
        return all(pid in stats and stats[pid]["window_started"] >= touched for pid in expected)

    wait_for(all_reset, timeout, "every server process to start a new loop-lag window")
    return touched


def end_loop_window(directory: Path, pids: Iterable[int], after: float, timeout: float = 5.0) -> dict[int, dict]:
    """The stats every process wrote after ``after`` (time.time()), i.e. covering the round."""
    expected = set(pids)
    result: dict[int, dict] = {}

    def all_written() -> bool:
        stats = read_loop_stats(directory)
        result.clear()
        result.update({pid: s for pid, s in stats.items() if pid in expected and s["written_at"] >= after})
        return set(result) == expected

    wait_for(all_written, timeout, "every server process to write its loop-lag stats")
    return result


# --- PostgreSQL -------------------------------------------------------------------------------


class PgConnectionCounter:
    """Counts backends connected to one database (``pg_stat_activity``), from another one."""

    def __init__(self, admin_url: str, database: str) -> None:
        import psycopg

        self._conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
        self._database = database
        self._lock = threading.Lock()

    def __call__(self) -> int | None:
        with self._lock:
            try:
                row = self._conn.execute(
                    "select count(*) from pg_stat_activity where datname = %s", (self._database,)
                ).fetchone()
            except Exception:  # noqa: BLE001 - a missed sample is not worth failing a round
                return None
        return int(row[0]) if row else None

    def close(self) -> None:
        self._conn.close()
