"""Every Prometheus metric of the server, defined once, and the small hooks that update them.

Several worker processes: prometheus-client's multiprocess mode. The settings point
PROMETHEUS_MULTIPROC_DIR at CIRKELLINE_METRICS_DIR before anything imports prometheus-client;
each process writes its values to memory-mapped files named for its pid there, and a scrape of
any worker (`render`) adds up the files of all of them. What processes that no longer run left
there is cleaned when a process starts (`forget_stale_files`): everything at a deployment's
start, only their live gauges when a worker restarts beside running ones.

Gauges of values another component holds (active runs, the database pool, the database executor
queue) are sampled rather than counted: `sample()` reads them from callbacks, once a second from
the event-loop watch and at every scrape, so a crash between an increment and its decrement can
never leave them wrong. Each process writes its own value; a scrape shows the sum over live ones.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(getattr(values.ValueClass, "_multiprocess", False))
_FILE = re.compile(r"^(?P<kind>.+)_(?P<pid>\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _files_by_pid(directory: Path) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    for path in directory.glob("*.db"):
        match = _FILE.match(path.name)
        if match is not None:
            found.setdefault(int(match["pid"]), []).append(path)
    return found


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _is_live_gauge(path: Path) -> bool:
    return path.name.startswith("gauge_live")


def forget_stale_files(directory: Path) -> None:
    """At a process start: forget what processes no longer running left in `directory`.

    No other live process there: the deployment is starting, every file is removed (counts
    start from zero). Others live: this process joins a running deployment (a restarted
    worker), so the dead processes' counters and histograms stay (the totals must never go
    down, or Prometheus sees a reset) and only their live gauges go. Files under this process's
    own pid are an earlier process's, which had the same pid.
    """
    me = os.getpid()
    files = _files_by_pid(directory)
    others_alive = any(_alive(pid) for pid in files if pid != me)
    for pid, paths in files.items():
        if pid == me or not _alive(pid):
            _remove(paths if not others_alive else [p for p in paths if _is_live_gauge(p)])


def forget_dead_gauges(directory: Path) -> None:
    """Drop the live gauges (in-progress counts) of processes that died since they started."""
    for pid, paths in _files_by_pid(directory).items():
        if pid != os.getpid() and not _alive(pid):
            _remove([p for p in paths if _is_live_gauge(p)])


if MULTIPROCESS:
    METRICS_DIR = Path(settings.CIRKELLINE_METRICS_DIR)
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    forget_stale_files(METRICS_DIR)  # before the first metric below opens this process's files

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RUN = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_TTFT = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
_LAG = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter("cirkelline_http_requests", "HTTP requests answered, by route template, method and status.",
                        ["route", "method", "status"])
HTTP_DURATION = Histogram("cirkelline_http_request_duration_seconds",
                          "Time to answer an HTTP request (non-streaming responses only).", ["route", "method"],
                          buckets=_LATENCY)
HTTP_IN_PROGRESS = Gauge("cirkelline_http_requests_in_progress", "HTTP requests being answered.",
                         multiprocess_mode="livesum")
ACTIVE_RUNS = Gauge("cirkelline_active_runs", "Runs in progress.", multiprocess_mode="livesum")
RUNS = Counter("cirkelline_runs", "Finished runs, by status, error type and model.", ["status", "error_type", "model"])
RUN_DURATION = Histogram("cirkelline_run_duration_seconds", "Run duration, start to final write, by status.",
                         ["status"], buckets=_RUN)
TTFT = Histogram("cirkelline_run_time_to_first_token_seconds", "Time from a run's start to its first content.",
                 ["model"], buckets=_TTFT)
TOKENS = Counter("cirkelline_tokens", "Tokens of finished runs, by model and kind (input, output, reasoning, ...).",
                 ["model", "kind"])
COST = Counter("cirkelline_cost_usd", "Cost of finished priced runs in USD, by model.", ["model"])
PROVIDER_CALLS = Counter("cirkelline_provider_calls", "Provider call attempts, by outcome.", ["outcome"])
PROVIDER_RETRIES = Counter("cirkelline_provider_retries", "Provider calls retried, by reason.", ["reason"])
ADMISSIONS_REFUSED = Counter("cirkelline_admissions_refused",
                             "Runs refused before they started, by scope (user, process: 429; budget: 402).",
                             ["scope"])
WS_CONNECTIONS = Gauge("cirkelline_websocket_connections", "Open chat websocket connections.",
                       multiprocess_mode="livesum")
DELEGATION_FAILURES = Counter("cirkelline_delegation_failures", "Delegation failures detected, by kind.", ["kind"])
DB_POOL_IN_USE = Gauge("cirkelline_db_pool_in_use", "PostgreSQL pool connections checked out.",
                       multiprocess_mode="livesum")
DB_POOL_WAITING = Gauge("cirkelline_db_pool_waiting", "Requests waiting for a PostgreSQL pool connection.",
                        multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("cirkelline_db_pool_size", "PostgreSQL pool connections open.", multiprocess_mode="livesum")
DB_QUEUE = Gauge("cirkelline_db_executor_queue_depth", "Database calls queued for a database thread.",
                 multiprocess_mode="livesum")
LOOP_LAG = Histogram("cirkelline_event_loop_lag_seconds", "How late the event loop's heartbeat ran.", buckets=_LAG)
LOOP_STALLS = Counter("cirkelline_event_loop_stalls", "Event-loop stalls longer than CIRKELLINE_LOOP_STALL_WARN_MS.")

# --- hooks ------------------------------------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
TOKEN_KINDS = ("input", "output", "reasoning", "cache_read", "cache_write")


def observe_http(route: str, method: str, status: int, seconds: float | None) -> None:
    """One answered request; `seconds` None for a streaming response (its end is not known here)."""
    method = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    if seconds is not None:
        HTTP_DURATION.labels(route, method).observe(seconds)


def observe_run(*, status: str, error_type: str, model: str, duration_s: float, ttft_s: float | None,
                tokens: dict[str, int], cost: float | None) -> None:
    """A finished run. `tokens` by kind (TOKEN_KINDS); `cost` in USD, None when unpriced."""
    RUNS.labels(status, error_type or "", model).inc()
    RUN_DURATION.labels(status).observe(duration_s)
    if ttft_s is not None:
        TTFT.labels(model).observe(ttft_s)
    for kind, count in tokens.items():
        if count:
            TOKENS.labels(model, kind).inc(count)
    if cost:
        COST.labels(model).inc(cost)


def call_outcome(status_code: int | None) -> str:
    """The outcome label of a failed provider call, from its HTTP status (None: no answer)."""
    if status_code == 429:
        return "rate_limited"
    if status_code in (408, 504):
        return "timeout"
    if status_code is None or status_code == 502:
        return "connection_error"  # agno reports connection failures as 502
    return "server_error" if status_code >= 500 else "client_error"


def provider_call(outcome: str) -> None:
    """One provider call attempt ended: "ok", or `call_outcome(status)` of its failure."""
    PROVIDER_CALLS.labels(outcome).inc()


def provider_retry(reason: str) -> None:
    PROVIDER_RETRIES.labels(reason).inc()


def admission_refused(scope: str) -> None:
    ADMISSIONS_REFUSED.labels(scope).inc()


def websocket_opened() -> None:
    WS_CONNECTIONS.inc()


def websocket_closed() -> None:
    WS_CONNECTIONS.dec()


def delegation_failure(kind: str) -> None:
    DELEGATION_FAILURES.labels(kind).inc()


def observe_loop_lag(seconds: float) -> None:
    LOOP_LAG.observe(seconds)


def loop_stalled() -> None:
    LOOP_STALLS.inc()


# --- sampled gauges ---------------------------------------------------------------------------

_sources: dict[Gauge, Callable[[], float]] = {}


def register_active_runs(count: Callable[[], int]) -> None:
    """The run service's count of live runs in this process (sampled, see the module docstring)."""
    _sources[ACTIVE_RUNS] = count


def register_db_queue_depth(depth: Callable[[], int]) -> None:
    """The storage executor's count of queued database calls (e.g. its work queue's qsize)."""
    _sources[DB_QUEUE] = depth


def _pool_stats() -> dict[str, int] | None:
    """psycopg pool statistics of the default database, if it is PostgreSQL and its pool exists.

    Read from the backend class's table of pools rather than through `connections[...].pool`,
    which would open the pool (and connections) if nothing had yet.
    """
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return None
    from django.db.backends.postgresql.base import DatabaseWrapper

    pool = getattr(DatabaseWrapper, "_connection_pools", {}).get("default")
    return pool.get_stats() if pool is not None else None


def sample() -> None:
    """Refresh this process's sampled gauges (cheap: a few attribute reads)."""
    for gauge, read in list(_sources.items()):
        try:
            gauge.set(read())
        except Exception:  # noqa: BLE001 - a broken source must not break the loop watch or a scrape
            logger.debug("metric source for %s failed", gauge, exc_info=True)
    try:
        stats = _pool_stats()
    except Exception:  # noqa: BLE001
        stats = None
    if stats is not None:
        size = stats.get("pool_size", 0)
        DB_POOL_SIZE.set(size)
        DB_POOL_IN_USE.set(size - stats.get("pool_available", 0))
        DB_POOL_WAITING.set(stats.get("requests_waiting", 0))


# --- exposition -------------------------------------------------------------------------------


def render() -> tuple[bytes, str]:
    """The text exposition of every worker's metrics, and its content type (blocking: file reads)."""
    sample()
    if not MULTIPROCESS:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    forget_dead_gauges(METRICS_DIR)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(METRICS_DIR))
    return generate_latest(registry), CONTENT_TYPE_LATEST


_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported_names() -> set[str]:
    """Every sample name the server exports (what dashboards and alerts may query)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("cirkelline_"):
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names
