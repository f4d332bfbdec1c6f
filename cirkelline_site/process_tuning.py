"""Tuning the server process for allocation-heavy runs: garbage collection thresholds, and memory
handed back to the system once the process is idle. `install()` is called once by the ASGI app.

- `tune_gc()`: a run allocates tens of thousands of short-lived
  container objects (agno events, messages, SDK models), so CPython's default gen-0 threshold
  of 700 triggers a collection every few events. A larger threshold
  (`CIRKELLINE_GC_THRESHOLD`, default 10000,20,100) collects far less often, and `gc.freeze()`
  keeps the start-up heap (Django, agno, the SDKs) out of every later full collection
  (docs/PERFORMANCE.md has what each threshold measured).
- `release_when_idle()`: after a burst, freed memory stays in the allocator's arenas, so the
  process keeps its peak RSS. When no run has been live for a few seconds the process runs a
  full collection and asks glibc to hand free pages back (`malloc_trim`), while idle, so no run
  ever waits on it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from collections.abc import Callable

from django.conf import settings

from chat.runs import live_run_count, when_idle

IDLE_DELAY = 5.0
_timer: asyncio.TimerHandle | None = None
_libc = None


def install() -> None:
    """Tune the collector now, and release memory each time the last live run has ended."""
    tune_gc()
    when_idle(lambda: release_when_idle(lambda: live_run_count() == 0))


def release_pending() -> bool:
    """Whether a release is scheduled (the process has been idle for less than IDLE_DELAY)."""
    return _timer is not None


def tune_gc() -> None:
    threshold = settings.CIRKELLINE_GC_THRESHOLD
    if threshold:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*threshold)


def trim_memory() -> None:
    """Ask glibc to hand free pages back to the system (nothing where there is no malloc_trim)."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name) if name else False
    if _libc and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)


def release_when_idle(is_idle: Callable[[], bool]) -> None:
    """Schedule a collection + trim once the process has been idle for IDLE_DELAY seconds."""
    global _timer
    if _timer is not None:
        _timer.cancel()

    def release() -> None:
        global _timer
        _timer = None
        if is_idle():
            gc.collect()
            trim_memory()

    _timer = asyncio.get_running_loop().call_later(IDLE_DELAY, release)
