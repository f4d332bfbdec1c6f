"""The load harness: run benchmark scenarios and write ``bench/results/<date>-<scenario>.json``.

    python -m bench.run list                                   # scenarios, presets, estimates
    python -m bench.run cirkelline-uvicorn-1w-sqlite-1s        # one scenario, N = 1..1000
    python -m bench.run cirkelline-daphne-1w-sqlite-1s --n 1,10,100
    python -m bench.run docs                                   # what docs/PERFORMANCE.md shows
    python -m bench.run full [--quick]                         # every scenario
    python -m bench.report                                     # regenerate the markdown table

A scenario name says what runs: ``<system>-<server>-<workers>w-<db>-<call>``:

- ``cirkelline-{daphne|uvicorn}-{1|2}w-{sqlite|postgres}-{1s|3.3s}``: the product, as a subprocess
  (``manage.py migrate`` first) against the fake provider (``tests.doubles.fake_openai`` process);
- ``cirkelline-ws-...``: the same, each run over the chat websocket (``/ws/chat/``) instead of SSE;
- ``agentos-uvicorn-1w-{sqlite|postgres}-{1s|3.3s}``: agno AgentOS serving the same team
  (needs ``pip install -r bench/requirements.txt``);
- ``sync-daphne-sqlite-1s``: the "before" anti-pattern (sync ``team.run()`` in an async view);
- ``bare-agno-{1s|3.3s}``: the same team in-process, no server, no database (the CPU floor).

Per scenario: fresh temp dir, fresh database (SQLite file, or PostgreSQL ``bench_cirkelline`` /
``bench_agentos`` dropped and recreated), users + JWTs minted offline (one user per concurrent
run, so the per-user cap never applies; the per-process cap stays at its default 1000), a
warm-up, then one round per N: N users start at once, each doing one streamed run. Every
process is stopped when the scenario ends, on errors too; every run and every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import PYTHON, RESULTS_DIR, ROOT, CallProfile, percentile, profile_named, raise_fd_limit, rounded
from .procstats import (
    CpuSnapshot,
    PgConnectionCounter,
    Sampler,
    cpu_seconds,
    descendants,
    end_loop_window,
    listen_overflows,
    start_loop_window,
    total_rss,
)
from .servers import (
    PG_ADMIN_URL,
    REDIS_URL,
    FakeProviderProcess,
    ManagedProcess,
    ServerSpec,
    free_port,
    postgres_database,
    provider_free_env,
    run_checked,
    stats_pids,
    wait_healthy,
    wait_stats_files,
    wait_until_idle,
)

ALL_NS = (1, 10, 50, 100, 200, 500, 1000)
QUICK_NS = (1, 10, 100)
SYNC_NS = (1, 10)
SYNC_QUICK_NS = (1, 5)

_NAME_RE = re.compile(
    r"^(?:(?P<kind>cirkelline|agentos)(?P<ws>-ws)?-(?P<server>daphne|uvicorn)-(?P<workers>\d+)w-(?P<db>sqlite|postgres)"
    r"|(?P<sync>sync)-daphne-(?P<sync_db>sqlite|postgres)"
    r"|(?P<bare>bare)-agno)-(?P<call>\d+(?:\.\d+)?s)$"
)

FULL = [
    *(f"cirkelline-{srv}-{db}-{call}" for call in ("1s", "3.3s") for db in ("sqlite", "postgres")
      for srv in ("daphne-1w", "uvicorn-1w", "uvicorn-2w")),
    "agentos-uvicorn-1w-sqlite-1s", "agentos-uvicorn-1w-sqlite-3.3s", "agentos-uvicorn-1w-postgres-1s",
    "bare-agno-1s", "bare-agno-3.3s",
    "sync-daphne-sqlite-1s",
]
# What docs/PERFORMANCE.md reports (scenario -> N values; None = the scenario's default).
DOCS: dict[str, tuple[int, ...] | None] = {
    "bare-agno-1s": None,
    "agentos-uvicorn-1w-sqlite-1s": None,
    "cirkelline-daphne-1w-sqlite-1s": None,
    "cirkelline-uvicorn-1w-sqlite-1s": None,
    "cirkelline-uvicorn-2w-postgres-1s": None,
    "cirkelline-uvicorn-2w-postgres-3.3s": (1, 1000),
    "sync-daphne-sqlite-1s": None,
}


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # cirkelline | agentos | sync | bare
    server: str | None
    workers: int
    db: str | None
    profile: CallProfile
    transport: str = "sse"  # "ws": every run over the chat websocket

    @property
    def default_ns(self) -> tuple[int, ...]:
        return SYNC_NS if self.kind == "sync" else ALL_NS

    @property
    def quick_ns(self) -> tuple[int, ...]:
        return SYNC_QUICK_NS if self.kind == "sync" else QUICK_NS


def parse_scenario(name: str) -> Scenario:
    found = _NAME_RE.match(name)
    if not found:
        raise ValueError(f"not a scenario name: {name!r} (see `python -m bench.run list`)")
    profile = profile_named(found["call"])
    if found["bare"]:
        return Scenario(name, "bare", None, 1, None, profile)
    if found["sync"]:
        return Scenario(name, "sync", "daphne", 1, found["sync_db"], profile)
    workers = int(found["workers"])
    if found["server"] == "daphne" and workers != 1:
        raise ValueError("Daphne is one process: use cirkelline-uvicorn-<n>w-... for several workers")
    if workers < 1:
        raise ValueError("at least one worker")
    if found["ws"] and found["kind"] != "cirkelline":
        raise ValueError("only Cirkelline has the chat websocket")
    return Scenario(name, found["kind"], found["server"], workers, found["db"], profile,
                    "ws" if found["ws"] else "sse")


def estimate_seconds(scenario: Scenario, ns: Sequence[int]) -> float:
    """A rough upper estimate: setup, plus per round the run time or the CPU-bound drain
    time (~80 ms of CPU per run on one core at saturation, 2 workers ≈ 1.6 cores), plus settling
    and the warm-up; measured on the 2-core machine of docs/PERFORMANCE.md."""
    if scenario.kind == "sync":
        return 25 + sum(n * scenario.profile.ideal_run + 5 for n in ns)
    cores = 1.6 if scenario.workers > 1 else 1.0
    cpu_per_run = 0.05 if scenario.kind == "bare" else 0.08
    rounds = sum(max(scenario.profile.ideal_run * 1.2, n * cpu_per_run / cores + scenario.profile.ideal_run) + 5
                 for n in ns)
    return (10 if scenario.kind == "bare" else 30) + rounds


# --- measuring ----------------------------------------------------------------------------------


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    values = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    total = sum(values[:8])
    return total - idle, total


def summarise_records(records: list[dict[str, Any]], profile: CallProfile) -> dict[str, Any]:
    """Client-side figures of one round (seconds, except the TTFT overhead in ms)."""
    ok = [r for r in records if r["error"] is None]
    completion = [r["completion"] for r in ok if r["completion"] is not None]
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    overhead = [(t - profile.ideal_ttft) * 1000 for t in ttft]
    kinds = Counter((r["error"] or "").split(":", 1)[0][:60] for r in records if r["error"] is not None)
    return {
        "runs": len(records),
        "errors": len(records) - len(ok),
        "error_kinds": dict(kinds),
        "completion_p50_s": rounded(percentile(completion, 0.50)),
        "completion_p95_s": rounded(percentile(completion, 0.95)),
        "completion_p99_s": rounded(percentile(completion, 0.99)),
        "completion_max_s": rounded(max(completion) if completion else None),
        "ttft_p50_s": rounded(percentile(ttft, 0.50)),
        "ttft_p99_s": rounded(percentile(ttft, 0.99)),
        "ttft_overhead_p50_ms": rounded(percentile(overhead, 0.50), 1),
        "ttft_overhead_p99_ms": rounded(percentile(overhead, 0.99), 1),
        "events_mean": rounded(sum(r["events"] for r in ok) / len(ok), 1) if ok else None,
    }


@dataclass
class Options:
    """How scenarios run (the command-line flags of ``python -m bench.run``)."""

    client: str = "raw"
    run_timeout: float = 150.0
    profile_n: int | None = None
    results_dir: Path = RESULTS_DIR
    date: str = field(default_factory=lambda: dt.date.today().isoformat())
    daphne_backlog: int | None = 2048
    keep_workdir: bool = False
    warmup: int = 10
    settle: float = 7.0


@dataclass
class ServerUnderTest:
    """A running server and what the rounds need to measure it."""

    process: ManagedProcess
    url: str
    stats_dir: Path
    workers: int
    workdir: Path
    provider_pid: int | None = None  # None: the provider's CPU is not measured (in-process fake)
    tokens_file: Path | None = None
    user_field: str | None = None
    db_counter: PgConnectionCounter | None = None
    client: str | None = None  # overrides Options.client ("ws" for websocket scenarios)


def _loadgen(sut: ServerUnderTest, n: int, options: Options, out: Path) -> dict[str, Any]:
    cmd = [PYTHON, "-m", "bench.loadgen", "--url", sut.url, "--n", str(n), "--client", sut.client or options.client,
           "--timeout", str(options.run_timeout), "--out", str(out)]
    if sut.tokens_file is not None:
        cmd += ["--tokens-file", str(sut.tokens_file)]
    if sut.user_field:
        cmd += ["--user-field", sut.user_field]
    log = sut.workdir / "loadgen.log"
    run_checked(cmd, provider_free_env(), log, timeout=options.run_timeout + 120, what=f"loadgen N={n}")
    return json.loads(out.read_text())


@contextlib.contextmanager
def _py_spy(root_pid: int, out: Path, log: Path) -> Iterator[None]:
    """py-spy attached to the server's process tree for the duration of the block."""
    spy = [str(Path(PYTHON).parent / "py-spy")]
    if not Path(spy[0]).exists():
        raise RuntimeError("py-spy is not installed: pip install -r bench/requirements.txt")
    cmd = [*spy, "record", "--pid", str(root_pid), "--subprocesses", "--nonblocking", "--rate", "200", "--gil",
           "--format", "raw", "--output", str(out), "--duration", "900"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # py-spy needs a moment to attach; an early sample gap is harmless
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_round(sut: ServerUnderTest, n: int, profile: CallProfile, options: Options,
                  spy_out: Path | None = None) -> dict[str, Any]:
    """One round of N concurrent runs against a running server, with server-side figures."""
    server = sut.process
    loop_pids = stats_pids(sut.stats_dir, server)
    wait_until_idle(sut.stats_dir, loop_pids)
    pids = descendants(server.pid)
    rss_before = total_rss(pids)
    start_loop_window(sut.stats_dir, loop_pids)
    machine_before = _machine_cpu()
    overflows_before = listen_overflows()
    cpu_before = CpuSnapshot.take(pids)
    provider_before = cpu_seconds(sut.provider_pid) if sut.provider_pid else None
    out = sut.workdir / f"load-{n}.json"
    spy = _py_spy(server.pid, spy_out, sut.workdir / "py-spy.log") if spy_out is not None else contextlib.nullcontext()
    with Sampler(lambda: descendants(server.pid), db_connections=sut.db_counter) as sampler, spy:
        load = _loadgen(sut, n, options, out)
    cpu_after = CpuSnapshot.take(descendants(server.pid))
    provider_cpu = cpu_seconds(sut.provider_pid) - provider_before if provider_before is not None else None
    machine_after = _machine_cpu()
    overflows_after = listen_overflows()
    ended = time.time()
    server.check_alive()
    lag = end_loop_window(sut.stats_dir, loop_pids, after=ended)
    wait_until_idle(sut.stats_dir, loop_pids)
    rss_after = total_rss(descendants(server.pid))
    # Memory handed back once the server has been idle a while (Cirkelline trims 5 s after its
    # last run; the others keep their high-water mark): what a quiet server holds afterwards.
    time.sleep(options.settle)
    rss_settled = total_rss(descendants(server.pid))
    server_cpu = cpu_after.since(cpu_before)
    busy = machine_after[0] - machine_before[0]
    total = machine_after[1] - machine_before[1]
    return _round_result(
        n, profile, load,
        server_cpu_s=server_cpu,
        provider_cpu_s=provider_cpu,
        machine_cpu_util=busy / total if total else None,
        rss_before=rss_before, rss_peak=sampler.rss_peak, rss_after=rss_after, rss_settled=rss_settled,
        lag_p50_ms=max((s["lag_p50_ms"] for s in lag.values()), default=None),
        lag_p99_ms=max((s["lag_p99_ms"] for s in lag.values()), default=None),
        lag_max_ms=max((s["lag_max_ms"] for s in lag.values()), default=None),
        db_connections_peak=sampler.db_peak,
        listen_overflows=overflows_after - overflows_before
        if overflows_before is not None and overflows_after is not None else None,
        processes=len(pids),
    )


def _round_result(n: int, profile: CallProfile, load: dict[str, Any], **server: Any) -> dict[str, Any]:
    records = load["records"]
    wall = load["wall_s"]
    summary = summarise_records(records, profile)
    mb = 1024 * 1024
    rss_before, rss_peak, rss_after = server.pop("rss_before"), server.pop("rss_peak"), server.pop("rss_after")
    rss_settled = server.pop("rss_settled", None) or rss_after
    server_cpu = server.pop("server_cpu_s")
    provider_cpu = server.pop("provider_cpu_s", None)
    client_cpu = load.get("cpu_s")
    return {
        "n": n,
        "wall_s": rounded(wall),
        "runs_per_s": rounded(n / wall if wall else None, 2),
        **summary,
        "server_cpu_s": rounded(server_cpu),
        "server_cpu_ms_per_run": rounded(1000 * server_cpu / n, 2),
        "provider_cpu_ms_per_run": rounded(1000 * provider_cpu / n, 2) if provider_cpu is not None else None,
        "client_cpu_s": rounded(client_cpu),
        # Share of one core the load generator used: near 1.0 means the client, not the server,
        # may be what limits the round.
        "client_cpu_share": rounded(client_cpu / wall, 3) if client_cpu is not None and wall else None,
        "machine_cpu_util": rounded(server.pop("machine_cpu_util", None), 3),
        "rss_before_mb": round(rss_before / mb, 1),
        "rss_peak_mb": round(rss_peak / mb, 1),
        "rss_after_mb": round(rss_after / mb, 1),
        "rss_per_run_kb": round((rss_peak - rss_before) / 1024 / n, 1),
        "rss_retained_mb": round((rss_after - rss_before) / mb, 1),
        "rss_settled_mb": round(rss_settled / mb, 1),
        "rss_retained_settled_mb": round((rss_settled - rss_before) / mb, 1),
        "loop_lag_p50_ms": server.pop("lag_p50_ms"),
        "loop_lag_p99_ms": server.pop("lag_p99_ms"),
        "loop_lag_max_ms": server.pop("lag_max_ms"),
        **server,
        "records": records,
    }


# --- scenarios --------------------------------------------------------------------------------


@contextlib.contextmanager
def _database(scenario: Scenario, workdir: Path) -> Iterator[tuple[str, str | None]]:
    """(DATABASE_URL-style URL, PostgreSQL database name or None) for the scenario."""
    if scenario.db == "sqlite":
        yield f"sqlite:///{workdir / f'{scenario.kind}.sqlite3'}", None
        return
    name = "bench_agentos" if scenario.kind == "agentos" else "bench_cirkelline"
    with postgres_database(name) as url:
        yield url, name


def server_env(workdir: Path, provider_url: str) -> dict[str, str]:
    """The environment every server under test gets (plus its database settings)."""
    stats_dir, var_dir = workdir / "stats", workdir / "var"
    stats_dir.mkdir(exist_ok=True)
    var_dir.mkdir(exist_ok=True)
    env = provider_free_env()
    env.update({
        "CIRKELLINE_VAR_DIR": str(var_dir),
        "CIRKELLINE_STATS_DIR": str(stats_dir),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "CIRKELLINE_SERVE_STATIC": "false",
        "CIRKELLINE_MODEL": "openai-like:fake",
        "CIRKELLINE_MODEL_BASE_URL": provider_url,
        "DJANGO_SETTINGS_MODULE": "cirkelline_site.settings",
    })
    return env


@contextlib.contextmanager
def serve(spec: ServerSpec, env: dict[str, str], workdir: Path, **extra: Any) -> Iterator[ServerUnderTest]:
    """Start the server (database already prepared), wait until it answers and every worker
    reports loop stats; stop it on exit. ``extra``: the other ``ServerUnderTest`` fields."""
    port = free_port()
    stats_dir = Path(env["CIRKELLINE_STATS_DIR"])
    with ManagedProcess(spec.command(port), env, workdir / "server.log", name=f"{spec.kind} server") as process:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(process, url + "/health", timeout=120)
        wait_stats_files(stats_dir, process, url + "/health", spec.workers)
        yield ServerUnderTest(process=process, url=url, stats_dir=stats_dir, workers=spec.workers, workdir=workdir,
                              **extra)


@contextlib.contextmanager
def start_server(scenario: Scenario, options: Options, workdir: Path, provider: FakeProviderProcess,
                 max_users: int) -> Iterator[ServerUnderTest]:
    """Database, migrations, users and tokens, the server process; all torn down on exit."""
    with contextlib.ExitStack() as stack:
        db_url, pg_name = stack.enter_context(_database(scenario, workdir))
        env = server_env(workdir, provider.base_url)
        extra: dict[str, Any] = {"provider_pid": provider.pid}
        if scenario.transport == "ws":
            extra["client"] = "ws"
        if scenario.kind == "agentos":
            env["BENCH_PROVIDER_URL"] = provider.base_url
            env["BENCH_AGENTOS_DB"] = db_url
            extra["user_field"] = "user_id"
        else:
            if scenario.kind == "sync":
                env["DJANGO_SETTINGS_MODULE"] = "bench.settings_sync"
            env["DATABASE_URL"] = db_url
            if scenario.workers > 1:
                # Several processes: Cirkelline's admission and cancel coordination need Redis.
                env["REDIS_URL"] = REDIS_URL
                env["CIRKELLINE_REDIS_PREFIX"] = f"bench-{secrets.token_hex(4)}"
            log = workdir / "setup.log"
            run_checked([PYTHON, "manage.py", "migrate", "--noinput"], env, log, 300, "manage.py migrate")
            tokens_file = workdir / "tokens.txt"
            run_checked([PYTHON, "-m", "bench.users", "--count", str(max_users), "--out", str(tokens_file)],
                        env, log, 300, "creating benchmark users")
            extra["tokens_file"] = tokens_file
        if pg_name is not None:
            extra["db_counter"] = counter = PgConnectionCounter(PG_ADMIN_URL, pg_name)
            stack.callback(counter.close)
        spec = ServerSpec(scenario.kind, scenario.server or "uvicorn", scenario.workers, options.daphne_backlog or None)
        yield stack.enter_context(serve(spec, env, workdir, **extra))


def warm_up(sut: ServerUnderTest, n: int, options: Options, attempts: int = 12) -> None:
    """Runs until every worker has served at least one team run (its first run pays for lazy
    imports and building clients: ~1.5 s of CPU, which must not land in a measured round).

    Why a loop: a burst of connects is usually accepted by whichever worker wakes first, so
    one round can miss a worker; later rounds are small, so the kernel spreads them."""
    from .procstats import read_loop_stats

    workers = set(stats_pids(sut.stats_dir, sut.process))
    if len(workers) <= 1:
        _loadgen(sut, n, options, sut.workdir / "warmup.json")
        return
    seen: set[int] = set()  # (AgentOS reports no live runs: run it with one worker)
    stop = threading.Event()

    def watch() -> None:  # a worker with a live run says so in its stats file (once a second)
        while not stop.wait(0.1):
            seen.update(pid for pid, s in read_loop_stats(sut.stats_dir).items() if s.get("live_runs"))

    watcher = threading.Thread(target=watch, name="bench-warmup", daemon=True)
    watcher.start()
    try:
        for attempt in range(attempts):
            _loadgen(sut, n if attempt == 0 else min(n, 2), options, sut.workdir / "warmup.json")
            if workers <= seen:
                return
    finally:
        stop.set()
        watcher.join(5)
    print(f"[bench] warning: warm-up reached workers {sorted(seen)} of {sorted(workers)}", flush=True)


def idle_cpu_ms_per_s(sut: ServerUnderTest, seconds: float = 3.0) -> float:
    """CPU the idle server burns per second (loop monitors, timers): context for the
    per-run CPU of small rounds, where it is a visible part of the total."""
    wait_until_idle(sut.stats_dir, stats_pids(sut.stats_dir, sut.process))
    pids = descendants(sut.process.pid)
    before = CpuSnapshot.take(pids)
    time.sleep(seconds)  # a measurement interval, not a synchronisation
    return round(1000 * CpuSnapshot.take(pids).since(before) / seconds, 2)


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("agno", "Django", "daphne", "uvicorn", "openai", "httpx", "psycopg", "fastapi"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def code_version() -> dict[str, Any]:
    """The commit under test and any uncommitted changes to the server code, so a result
    file says exactly which code produced it (the tree may move between scenarios)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10,
                                  check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "chat", "cirkelline_site", "metrics")
             .splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_server_files": dirty}


def _with_efficiency(rounds: list[dict[str, Any]], profile: CallProfile) -> tuple[float, str]:
    """Concurrency efficiency = single-run time ÷ p50 completion, added to every round.

    The single-run time is the N=1 round's completion when the scenario has one, else the
    ideal run time of the profile (said in ``efficiency_basis``)."""
    single = next((r["completion_p50_s"] for r in rounds if r["n"] == 1 and r["completion_p50_s"]), None)
    basis = "N=1 round" if single else "ideal run time (no N=1 round)"
    single = single or profile.ideal_run
    for r in rounds:
        p50 = r["completion_p50_s"]
        r["efficiency"] = rounded(single / p50, 3) if p50 else None
    return single, basis


def run_scenario(scenario: Scenario, ns: Sequence[int], options: Options) -> Path:
    """Run one scenario end to end and write its result file; returns the file's path."""
    raise_fd_limit()
    started = time.time()
    code = code_version()
    rounds: list[dict[str, Any]] = []
    profile_round: dict[str, Any] | None = None
    spy_path: Path | None = None
    idle_cpu: float | None = None
    options.results_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{scenario.name}-"))
    print(f"[bench] {scenario.name}: N={list(ns)}, estimate ~{estimate_seconds(scenario, ns) / 60:.1f} min, "
          f"workdir {workdir}", flush=True)
    try:
        with FakeProviderProcess(scenario.profile, workdir, provider_free_env()) as provider:
            if scenario.kind == "bare":
                rounds = _bare_rounds(scenario, ns, options, workdir, provider)
            else:
                with start_server(scenario, options, workdir, provider, max_users=max(max(ns), options.warmup)) \
                        as sut:
                    # Sync runs are served one after the other: one warm-up run is enough.
                    warmup = min(options.warmup, 1) if scenario.kind == "sync" else options.warmup
                    if warmup:
                        warm_up(sut, warmup, options)
                    idle_cpu = idle_cpu_ms_per_s(sut)
                    for n in ns:
                        result = measure_round(sut, n, scenario.profile, options)
                        rounds.append(result)
                        _print_round(scenario, result)
                        if options.profile_n == n:
                            spy_path = options.results_dir / f"{options.date}-{scenario.name}-n{n}.collapsed"
                            profile_round = measure_round(sut, n, scenario.profile, options, spy_out=spy_path)
                            profile_round.pop("records")
                            spy_path = _gzip(spy_path)
    finally:
        if not options.keep_workdir:
            _remove_tree(workdir)
    return write_result(scenario, rounds, options, started=started, idle_cpu=idle_cpu,
                        profile_round=profile_round, spy_path=spy_path, code=code)


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    """A result without its per-run records: what the tables are made from (bench.report)."""
    summary = dict(result)
    summary["rounds"] = [{k: v for k, v in r.items() if k != "records"} for r in result["rounds"]]
    if summary.get("profile_round"):
        summary["profile_round"] = {k: v for k, v in summary["profile_round"].items() if k != "records"}
    return summary


def summary_path(result_path: Path) -> Path:
    """``<date>-<scenario>.summary.json`` beside ``<date>-<scenario>.json``."""
    return result_path.with_name(result_path.name.removesuffix(".json") + ".summary.json")


def write_result(scenario: Scenario, rounds: list[dict[str, Any]], options: Options, *, started: float,
                 idle_cpu: float | None = None, profile_round: dict[str, Any] | None = None,
                 spy_path: Path | None = None, code: dict[str, Any] | None = None) -> Path:
    """Write ``<results>/<date>-<scenario>.json`` (configuration, machine, every round with its per-run
    records; ignored by git) and its summary ``<date>-<scenario>.summary.json`` (the same without the
    records; kept in git, and what bench.report makes the tables from)."""
    single, basis = _with_efficiency(rounds, scenario.profile)
    payload = {
        "scenario": scenario.name,
        "kind": scenario.kind,
        "server": scenario.server,
        "workers": scenario.workers,
        "db": scenario.db,
        "date": options.date,
        "started_at": started,
        "duration_s": round(time.time() - started, 1),
        "client": "ws" if scenario.transport == "ws" else options.client,
        "transport": scenario.transport,
        "call_profile": scenario.profile.describe(),
        "single_run_s": single,
        "efficiency_basis": basis,
        "server_idle_cpu_ms_per_s": idle_cpu,
        "code": code if code is not None else code_version(),
        "machine": _machine(),
        "versions": _versions(),
        "settings": {
            "per_user_cap": "one user per concurrent run (CIRKELLINE_MAX_RUNS_PER_USER default 3 never reached)",
            "per_process_cap": "CIRKELLINE_MAX_CONCURRENT_RUNS default (1000)",
            "daphne_backlog": options.daphne_backlog,
            "redis": scenario.workers > 1 and scenario.kind != "agentos",
            "run_timeout_s": options.run_timeout,
        },
        "rounds": rounds,
        "profile_round": profile_round,
        "profile_file": _display_path(spy_path) if spy_path else None,
    }
    options.results_dir.mkdir(parents=True, exist_ok=True)
    out = options.results_dir / f"{options.date}-{scenario.name}.json"
    out.write_text(json.dumps(payload, indent=1))
    summary_path(out).write_text(json.dumps(summary_of(payload), indent=1))
    print(f"[bench] {scenario.name}: wrote {out} and its summary ({payload['duration_s']:.0f} s)", flush=True)
    return out


def _bare_rounds(scenario: Scenario, ns: Sequence[int], options: Options, workdir: Path,
                 provider: FakeProviderProcess) -> list[dict[str, Any]]:
    out = workdir / "bare.json"
    env = provider_free_env()
    env["CIRKELLINE_VAR_DIR"] = str(workdir / "var")
    cmd = [PYTHON, "-m", "bench.bare", "--provider-url", provider.base_url, "--ns", ",".join(map(str, ns)),
           "--profile", scenario.profile.name, "--out", str(out), "--timeout", str(options.run_timeout),
           "--warmup", str(options.warmup)]
    provider_before = cpu_seconds(provider.pid)
    run_checked(cmd, env, workdir / "bare.log", timeout=estimate_seconds(scenario, ns) * 3 + 300, what="bench.bare")
    provider_cpu = cpu_seconds(provider.pid) - provider_before
    data = json.loads(out.read_text())
    rounds = []
    total_runs = sum(ns) + options.warmup
    for raw in data["rounds"]:
        load = {"records": raw["records"], "wall_s": raw["wall_s"], "cpu_s": None}
        result = _round_result(
            raw["n"], scenario.profile, load,
            server_cpu_s=raw["server_cpu_s"],
            # The provider's CPU is only known for the whole process; spread it over the runs.
            provider_cpu_s=provider_cpu * raw["n"] / total_runs,
            rss_before=raw["rss_before"], rss_peak=raw["rss_peak"], rss_after=raw["rss_after"],
            lag_p50_ms=raw["loop_lag_p50_ms"], lag_p99_ms=raw["loop_lag_p99_ms"], lag_max_ms=raw["loop_lag_max_ms"],
            db_connections_peak=None, processes=1,
        )
        rounds.append(result)
        _print_round(scenario, result)
    return rounds


def _print_round(scenario: Scenario, r: dict[str, Any]) -> None:
    print(f"[bench] {scenario.name} N={r['n']}: {r['runs_per_s']} runs/s, p50 {r['completion_p50_s']} s, "
          f"p99 {r['completion_p99_s']} s, TTFT+ p99 {r['ttft_overhead_p99_ms']} ms, "
          f"CPU {r['server_cpu_ms_per_run']} ms/run, lag p99 {r['loop_lag_p99_ms']} ms, "
          f"errors {r['errors']} {r['error_kinds'] or ''}, client CPU {r['client_cpu_share']}", flush=True)


def _gzip(path: Path) -> Path:
    """Compress a collapsed-stack file (they are megabytes of repeated frames) next to itself."""
    import gzip

    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return target


def _display_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# --- command line -------------------------------------------------------------------------------


def _plan(targets: list[str], ns_override: tuple[int, ...] | None, quick: bool) -> list[tuple[Scenario, tuple]]:
    plan: list[tuple[Scenario, tuple[int, ...]]] = []
    for target in targets:
        if target == "full":
            names: dict[str, tuple[int, ...] | None] = dict.fromkeys(FULL)
        elif target == "docs":
            names = dict(DOCS)
        else:
            names = {target: None}
        for name, preset in names.items():
            scenario = parse_scenario(name)
            ns = ns_override or (scenario.quick_ns if quick else (preset or scenario.default_ns))
            plan.append((scenario, tuple(ns)))
    return plan


def _list() -> None:
    print("presets:")
    for preset, names in (("docs", list(DOCS)), ("full", FULL)):
        plan = _plan([preset], None, False)
        quick = _plan([preset], None, True)
        total = sum(estimate_seconds(s, ns) for s, ns in plan)
        total_quick = sum(estimate_seconds(s, ns) for s, ns in quick)
        print(f"  {preset}: {len(names)} scenarios, ~{total / 60:.0f} min (--quick ~{total_quick / 60:.0f} min)")
        for name in names:
            print(f"    {name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", help="scenario names, or the presets `docs` / `full`, or `list`")
    parser.add_argument("--n", help="comma-separated N values (overrides the scenario's)")
    parser.add_argument("--quick", action="store_true", help=f"N = {QUICK_NS} (sync: {SYNC_QUICK_NS})")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator client")
    parser.add_argument("--run-timeout", type=float, default=150.0, help="seconds one run may take (client side)")
    parser.add_argument("--profile-n", type=int, help="also profile the server with py-spy in an extra round "
                        "at this N (server scenarios)")
    parser.add_argument("--daphne-backlog", type=int, default=2048,
                        help="listen backlog for Daphne (default 2048, as `make run`; 0: `-b/-p`, Twisted's 50)")
    parser.add_argument("--warmup", type=int, default=10, help="runs before the measured rounds")
    parser.add_argument("--settle", type=float, default=7.0,
                        help="seconds of idleness after each round before reading the RSS the server keeps")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="date part of the result file names")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and databases of the scenario")
    parser.add_argument("--no-report", action="store_true", help="do not regenerate the markdown table")
    args = parser.parse_args(argv)
    if args.targets == ["list"]:
        _list()
        return
    ns_override = tuple(int(x) for x in args.n.split(",")) if args.n else None
    plan = _plan(args.targets, ns_override, args.quick)
    total = sum(estimate_seconds(s, ns) for s, ns in plan)
    print(f"[bench] {len(plan)} scenario(s), estimated ~{total / 60:.0f} min", flush=True)
    options = Options(client=args.client, run_timeout=args.run_timeout, profile_n=args.profile_n,
                      results_dir=args.results_dir, date=args.date, daphne_backlog=args.daphne_backlog,
                      keep_workdir=args.keep_workdir, warmup=args.warmup, settle=args.settle)
    failed = []
    for scenario, ns in plan:
        try:
            run_scenario(scenario, ns, options)
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not lose the others' results
            print(f"[bench] {scenario.name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            failed.append(scenario.name)
    if not args.no_report:
        from .report import write_report

        path = write_report(args.results_dir, args.date)
        print(f"[bench] table: {path}", flush=True)
    if failed:
        sys.exit(f"[bench] failed scenarios: {', '.join(failed)}")


if __name__ == "__main__":
    main()
