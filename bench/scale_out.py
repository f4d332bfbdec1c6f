"""Two workers behind nginx against one worker reached directly: throughput and CPU per run.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/<n> python -m bench.scale_out --n 50,200 --rounds 4
    # writes bench/results/<date>-scale-out.summary.json

The deployment as shipped: workers started by `deploy/run-workers.sh` (Daphne, the product's
`cirkelline_site.asgi:application`, `--proxy-headers`, backlog 2048), nginx from Debian's
packages running `deploy/nginx/cirkelline.conf.template` rendered as tests/deploy/nginx.py renders
it, both on PostgreSQL (a fresh `bench_scaleout` database) and Redis (`BENCH_REDIS_URL`, a fresh
key prefix). The same load generator (`bench/loadgen.py`, raw client, one user and JWT per
concurrent run) and fake provider (`tests.doubles.fake_openai`, one process, the `1s` profile by
default) as `bench.run`; nothing leaves 127.0.0.1.

- **direct**: `run-workers.sh 1`, the load generator connects to the worker.
- **nginx**: `run-workers.sh 2`, the load generator connects to nginx (one worker process,
  `keepalive 64` to the workers), which spreads the runs round-robin.

Both deployments are up at once, warmed up, and measured in alternating rounds (direct, nginx;
nginx, direct; ...) at each N: the machine has 2 cores shared with the provider, the load
generator and other people's work, and a figure drifts between rounds by as much as the
differences measured, so each configuration's rounds are reported whole (median and range), never
one round alone. Server CPU per run counts the worker processes (and run-workers.sh's shell) and,
for the nginx deployment, nginx's processes separately. PostgreSQL connections are counted per
deployment (`PGAPPNAME`), the database's commits and rows per run from `pg_stat_database`. Loop
lag is not measured: the shipped workers serve the product's app, without the harness's loop
monitor (bench/asgi.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.deploy.nginx import main_config, nginx_executable, render

from .common import PYTHON, RESULTS_DIR, ROOT, profile_named, raise_fd_limit
from .procstats import CpuSnapshot, PgConnectionCounter, descendants
from .rounds import errors, figure, provenance, round_order, spread, write_summary
from .run import Options, ServerUnderTest, _remove_tree, measure_round, warm_up
from .servers import (
    PG_ADMIN_URL,
    REDIS_URL,
    FakeProviderProcess,
    ManagedProcess,
    postgres_database,
    provider_free_env,
    run_checked,
    wait_healthy,
)

RUN_WORKERS = ROOT / "deploy" / "run-workers.sh"
CONFIGS = ("direct", "nginx")
FIGURES = ("runs_per_s", "server_cpu_ms_per_run", "nginx_cpu_ms_per_run", "completion_p50_s", "completion_p99_s",
           "ttft_overhead_p50_ms", "db_connections_peak", "machine_cpu_util", "db_xact_commit_per_run",
           "db_tup_inserted_per_run", "db_tup_updated_per_run", "db_tup_fetched_per_run")


class DeploymentConnections(PgConnectionCounter):
    """Backends of one deployment: its workers connect with `PGAPPNAME` set to its name (libpq
    names their connections `application_name` after it), so two deployments on one database
    are counted apart."""

    def __init__(self, admin_url: str, database: str, deployment: str) -> None:
        super().__init__(admin_url, database)
        self._deployment = deployment

    def __call__(self) -> int | None:
        with self._lock:
            try:
                row = self._conn.execute(
                    "select count(*) from pg_stat_activity where datname = %s and application_name = %s",
                    (self._database, self._deployment)).fetchone()
            except Exception:  # noqa: BLE001 - a missed sample is not worth failing a round
                return None
        return int(row[0]) if row else None


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (run-workers.sh takes a first port)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65000:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


@contextlib.contextmanager
def workers(count: int, env: dict[str, str], workdir: Path) -> Iterator[tuple[ManagedProcess, list[str]]]:
    """`deploy/run-workers.sh <count> <port>`; (the script's process, the workers' base URLs)."""
    first = consecutive_free_ports(count)
    log = workdir / f"workers-{count}.log"
    with ManagedProcess(["bash", str(RUN_WORKERS), str(count), str(first)], {**env, "PYTHON": PYTHON}, log,
                        name=f"run-workers.sh {count}") as process:
        urls = [f"http://127.0.0.1:{first + i}" for i in range(count)]
        for url in urls:
            wait_healthy(process, url + "/health", timeout=120)
        yield process, urls


@contextlib.contextmanager
def nginx(upstreams: list[str], workdir: Path) -> Iterator[tuple[ManagedProcess, str]]:
    """Debian's nginx with the shipped site configuration in front of `upstreams`; (process, URL)."""
    executable = nginx_executable()
    prefix = workdir / "nginx"
    prefix.mkdir()
    port = consecutive_free_ports(1)
    site = prefix / "cirkelline.conf"
    servers = " ".join(f"server {url.removeprefix('http://')};" for url in upstreams)
    site.write_text(render({"CIRKELLINE_LISTEN": f"127.0.0.1:{port}", "CIRKELLINE_UPSTREAMS": servers}))
    conf = prefix / "nginx.conf"
    conf.write_text(main_config(prefix, site))
    run_checked([executable, "-t", "-p", str(prefix), "-c", str(conf)], dict(os.environ), prefix / "check.log", 30,
                "nginx -t")
    with ManagedProcess([executable, "-p", str(prefix), "-c", str(conf)], dict(os.environ), prefix / "nginx.log",
                        name="nginx") as process:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(process, url + "/health", timeout=30)
        yield process, url


DB_COUNTERS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched")


def database_counters(counter: PgConnectionCounter) -> dict[str, int]:
    """PostgreSQL's cumulative counters of the benchmark database (pg_stat_database)."""
    with counter._lock:
        row = counter._conn.execute(f"select {', '.join(DB_COUNTERS)} from pg_stat_database where datname = %s",
                                    (counter._database,)).fetchone()
    return dict(zip(DB_COUNTERS, row, strict=True))


def measure(sut: ServerUnderTest, n: int, options: Options, profile, proxy: ManagedProcess | None) -> dict[str, Any]:
    """One round (bench.run.measure_round) plus the proxy's CPU and the database's work over it.

    The database figures are per run over the round and its settling time: both deployments
    share the database, so the idle one's few writes (its workers' lease heartbeats) are in them."""
    before = CpuSnapshot.take(descendants(proxy.pid)) if proxy else None
    db_before = database_counters(sut.db_counter)
    result = measure_round(sut, n, profile, options)
    db_after = database_counters(sut.db_counter)
    result.pop("records")
    result["nginx_cpu_ms_per_run"] = (round(1000 * CpuSnapshot.take(descendants(proxy.pid)).since(before) / n, 2)
                                      if proxy else None)
    for name in DB_COUNTERS:
        result[f"db_{name}_per_run"] = round((db_after[name] - db_before[name]) / n, 2)
    return result


def figures(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each of FIGURES over a deployment's rounds: median, min-max and every round's value."""
    out: dict[str, Any] = {}
    for name in FIGURES:
        values = figure(rounds, name)
        if values:
            out[name] = {**spread(values), "rounds": values}
    out["errors"] = errors(rounds)
    return out


def compare(ns: list[int], rounds: int, call: str, options: Options) -> dict[str, Any]:
    profile = profile_named(call)
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-out-"))
    results: dict[int, dict[str, list[dict]]] = {n: {c: [] for c in CONFIGS} for n in ns}
    try:
        with contextlib.ExitStack() as stack:
            provider = stack.enter_context(FakeProviderProcess(profile, workdir, provider_free_env()))
            db_url = stack.enter_context(postgres_database("bench_scaleout"))
            env = provider_free_env()
            env.update({
                "DATABASE_URL": db_url, "REDIS_URL": REDIS_URL,
                "CIRKELLINE_REDIS_PREFIX": f"bench-{secrets.token_hex(4)}",
                "CIRKELLINE_VAR_DIR": str(workdir / "var"), "CIRKELLINE_METRICS_DIR": str(workdir / "metrics"),
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "CIRKELLINE_SERVE_STATIC": "false",
                "CIRKELLINE_MODEL": "openai-like:fake", "CIRKELLINE_MODEL_BASE_URL": provider.base_url,
                "DJANGO_SETTINGS_MODULE": "cirkelline_site.settings",
            })
            (workdir / "var").mkdir()
            log = workdir / "setup.log"
            run_checked([PYTHON, "manage.py", "migrate", "--noinput"], env, log, 300, "manage.py migrate")
            tokens = workdir / "tokens.txt"
            users = max(*ns, options.warmup)
            run_checked([PYTHON, "-m", "bench.users", "--count", str(users), "--out", str(tokens)], env, log, 300,
                        "creating benchmark users")
            counters = {config: DeploymentConnections(PG_ADMIN_URL, "bench_scaleout", f"cirkelline-{config}")
                        for config in CONFIGS}
            for counter in counters.values():
                stack.callback(counter.close)
            stats_dir = workdir / "stats"  # no loop monitor in the shipped workers: stays empty
            stats_dir.mkdir()

            one, (direct_url,) = stack.enter_context(workers(1, {**env, "PGAPPNAME": "cirkelline-direct"}, workdir))
            two, upstreams = stack.enter_context(workers(2, {**env, "PGAPPNAME": "cirkelline-nginx"}, workdir))
            proxy, proxy_url = stack.enter_context(nginx(upstreams, workdir))
            common = {"stats_dir": stats_dir, "workdir": workdir, "provider_pid": provider.pid, "tokens_file": tokens}
            suts = {"direct": ServerUnderTest(process=one, url=direct_url, workers=1, db_counter=counters["direct"],
                                              **common),
                    "nginx": ServerUnderTest(process=two, url=proxy_url, workers=2, db_counter=counters["nginx"],
                                             **common)}
            for sut in suts.values():  # first runs pay for imports and clients: never in a measured round
                for _ in range(3):
                    warm_up(sut, options.warmup, options)
            for n in ns:
                for index in range(rounds):
                    for config in round_order(CONFIGS, index):
                        result = measure(suts[config], n, options, profile, proxy if config == "nginx" else None)
                        result["round"] = index + 1
                        result["load_average_1m"] = os.getloadavg()[0]
                        results[n][config].append(result)
                        print(f"[bench] {config:6} N={n} round {index + 1}: {result['runs_per_s']} runs/s, "
                              f"CPU {result['server_cpu_ms_per_run']} ms/run"
                              + (f" + nginx {result['nginx_cpu_ms_per_run']}" if config == "nginx" else "")
                              + f", p50 {result['completion_p50_s']} s, errors {result['errors']}, "
                              f"DB conn {result['db_connections_peak']}, load {result['load_average_1m']:.1f}",
                              flush=True)
    finally:
        if not options.keep_workdir:
            _remove_tree(workdir)
    return {
        "comparison": "scale-out", "configs": {
            "direct": "deploy/run-workers.sh 1 (Daphne, cirkelline_site.asgi), the load generator connects to it",
            "nginx": "deploy/run-workers.sh 2 behind nginx (deploy/nginx/cirkelline.conf.template, 1 nginx worker)"},
        "database": "PostgreSQL (bench_scaleout, fresh)", "redis": "standalone, fresh key prefix",
        "ns": ns, "rounds": rounds, "call_profile": profile.describe(), **provenance(options),
        "summary": {str(n): {c: figures(results[n][c]) for c in CONFIGS} for n in ns},
        "results": {str(n): results[n] for n in ns},
    }


def table(summary: dict[str, Any]) -> str:
    """The markdown table of docs/PERFORMANCE.md from a summary."""
    lines = ["| N | deployment | runs/s median (range) | workers' CPU ms/run median (range) | nginx CPU ms/run | "
             "p50 completion s | TTFT+ p50 ms | DB conn peak | DB commits / rows written per run | errors |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n, configs in summary["summary"].items():
        for config, s in configs.items():
            def cell(figure: str, digits: int = 1, s: dict = s) -> str:
                if figure not in s:
                    return "–"
                f = s[figure]
                return f"{f['median']:.{digits}f} ({f['min']:.{digits}f}-{f['max']:.{digits}f})"
            lines.append(f"| {n} | {config} | {cell('runs_per_s')} | {cell('server_cpu_ms_per_run')} | "
                         f"{cell('nginx_cpu_ms_per_run', 2)} | {cell('completion_p50_s', 2)} | "
                         f"{cell('ttft_overhead_p50_ms', 0)} | {cell('db_connections_peak', 0)} | "
                         f"{s['db_xact_commit_per_run']['median']:.1f} / "
                         f"{s['db_tup_inserted_per_run']['median'] + s['db_tup_updated_per_run']['median']:.1f} | "
                         f"{s['errors']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="50,200", help="concurrent runs per round, comma-separated (at most 400)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per deployment and N")
    parser.add_argument("--call", default="1s", help="call profile (1s, 3.3s, ...)")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds after each round")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    ns = [int(x) for x in args.n.split(",")]
    if not all(1 <= n <= 400 for n in ns) or not 1 <= args.rounds <= 20:
        parser.error("N from 1 to 400 (nginx's 1024 connections: two per run), 1 to 20 rounds")
    options = Options(date=dt.date.today().isoformat(), settle=args.settle, results_dir=args.results_dir,
                      keep_workdir=args.keep_workdir)
    started = time.time()
    summary = compare(ns, args.rounds, args.call, options)
    out = write_summary(summary, args.results_dir, f"{options.date}-scale-out", started)
    print(table(summary), flush=True)
    print(f"[bench] wrote {out}", flush=True)


if __name__ == "__main__":
    main()
