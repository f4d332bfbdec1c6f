"""BENCH ONLY: event-loop lag and process figures for the benchmark harness.

The harness serves Cirkelline as `bench.asgi:application` (the product's ASGI app wrapped by
`instrument`) and AgentOS wrapped the same way (bench/agentos_app.py). With
`CIRKELLINE_STATS_DIR` set, every server process runs a heartbeat on its event loop: it
sleeps 10 ms at a time and records how late it wakes up (the loop lag: how long other work kept
the loop busy). Once a second it writes a summary to `<dir>/stats-<pid>.json` (written to a
temporary file and renamed, so readers never see half a file). Touching `<dir>/reset` starts a
new measurement window in every process. Several workers each write their own file, which is
why this is a file and not an HTTP endpoint (a request reaches only one worker).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

HEARTBEAT = 0.010
WRITE_EVERY = 1.0
MAX_SAMPLES = 200_000


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class LoopMonitor:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.samples: list[float] = []
        self.window_started = time.time()
        self._reset_seen = 0.0

    def _check_reset(self) -> None:
        try:
            mtime = (self.directory / "reset").stat().st_mtime
        except OSError:
            return
        if mtime > self._reset_seen:
            self._reset_seen = mtime
            self.samples.clear()
            self.window_started = time.time()

    def summary(self) -> dict[str, Any]:
        from chat.runs import live_run_count  # Django is set up by now: the app is serving

        ordered = sorted(self.samples)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "pid": os.getpid(),
            "written_at": time.time(),
            "window_started": self.window_started,
            "lag_samples": len(ordered),
            "lag_p50_ms": round(_percentile(ordered, 0.50) * 1000, 3),
            "lag_p99_ms": round(_percentile(ordered, 0.99) * 1000, 3),
            "lag_max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 3),
            "live_runs": live_run_count(),
            "cpu_user_s": usage.ru_utime,
            "cpu_system_s": usage.ru_stime,
            "rss_bytes": _rss_bytes(),
            "peak_rss_bytes": usage.ru_maxrss * 1024,
        }

    def _write(self) -> None:
        path = self.directory / f"stats-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.summary()))
        tmp.replace(path)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        self._check_reset()
        while True:
            before = loop.time()
            await asyncio.sleep(HEARTBEAT)
            now = loop.time()
            self.samples.append(max(0.0, now - before - HEARTBEAT))
            if len(self.samples) > MAX_SAMPLES:
                del self.samples[: MAX_SAMPLES // 2]
            if now - last_write >= WRITE_EVERY:
                last_write = now
                self._check_reset()
                try:
                    self._write()
                except OSError:
                    pass


def instrument(app, directory: str):
    """Wrap an ASGI app so its process starts a LoopMonitor on the first request."""
    state: dict[str, Any] = {"task": None}
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)

    async def wrapped(scope, receive, send):
        if state["task"] is None:
            state["task"] = asyncio.get_running_loop().create_task(LoopMonitor(path).run())
        return await app(scope, receive, send)

    return wrapped
