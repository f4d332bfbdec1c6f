"""What an open chat page costs a worker while nothing runs: memory and CPU per idle websocket.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/<n> python -m bench.idle_sockets --sockets 1000 --hold 60
    # writes bench/results/<date>-idle-sockets-k<K>.summary.json

A capacity figure for many signed-in users of whom few are waiting for an answer: each open chat
page holds one websocket. One worker as `deploy/run-workers.sh 1` starts it (Daphne, the
product's app, pings every 20 s), on PostgreSQL and Redis (the channel layer: every socket joins
its user's group). K users (one JWT each, `bench.users`) open one socket each, in batches of 50,
and wait for `ready`; the client sends no pings (a browser does not; the server's pings are
answered). Measured on the worker: RSS before and after the sockets opened (per socket), its
CPU over `--hold` seconds with no socket, then over the same time with the K sockets idle (per
socket per minute), and PostgreSQL connections. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import PYTHON, RESULTS_DIR, raise_fd_limit
from .procstats import CpuSnapshot, descendants, total_rss
from .run import _machine, _remove_tree, _versions, code_version
from .scale_out import DeploymentConnections, workers
from .servers import PG_ADMIN_URL, REDIS_URL, postgres_database, provider_free_env, run_checked

# Connects at once: the pace of the first measurements (a burst of 100 then closed some sockets
# with 1011, redis-py's pools raising past 100 connections; they wait now, docs/RELIABILITY.md).
BATCH = 50


async def open_sockets(url: str, tokens: list[str]) -> list[Any]:
    from websockets.asyncio.client import connect

    async def one(token: str):
        ws = await connect(url, subprotocols=["bearer", token], ping_interval=None, max_size=None)
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise RuntimeError(f"socket not ready: {ready}")
        return ws

    sockets: list[Any] = []
    for start in range(0, len(tokens), BATCH):
        sockets += await asyncio.gather(*(one(t) for t in tokens[start:start + BATCH]))
    return sockets


def measure(k: int, hold: float, keep: bool) -> dict[str, Any]:
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="bench-idle-sockets-"))
    try:
        with contextlib.ExitStack() as stack:
            db_url = stack.enter_context(postgres_database("bench_sockets"))
            env = provider_free_env()
            env.update({"DATABASE_URL": db_url, "REDIS_URL": REDIS_URL,
                        "CIRKELLINE_REDIS_PREFIX": f"bench-{secrets.token_hex(4)}",
                        "CIRKELLINE_VAR_DIR": str(workdir / "var"), "CIRKELLINE_METRICS_DIR": str(workdir / "metrics"),
                        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "CIRKELLINE_SERVE_STATIC": "false",
                        "CIRKELLINE_MODEL": "demo", "DJANGO_SETTINGS_MODULE": "cirkelline_site.settings",
                        "PGAPPNAME": "cirkelline-sockets"})
            (workdir / "var").mkdir()
            log = workdir / "setup.log"
            run_checked([PYTHON, "manage.py", "migrate", "--noinput"], env, log, 300, "manage.py migrate")
            tokens_file = workdir / "tokens.txt"
            run_checked([PYTHON, "-m", "bench.users", "--count", str(k), "--out", str(tokens_file)], env, log, 300,
                        "creating benchmark users")
            tokens = tokens_file.read_text().split()
            connections = DeploymentConnections(PG_ADMIN_URL, "bench_sockets", "cirkelline-sockets")
            stack.callback(connections.close)
            process, (url,) = stack.enter_context(workers(1, env, workdir))
            ws_url = url.replace("http", "ws", 1) + "/ws/chat/"

            async def scenario() -> dict[str, Any]:
                # A first socket pays for the websocket stack's imports: not in the figures.
                warm = await open_sockets(ws_url, tokens[:1])
                await warm[0].close()
                await asyncio.sleep(2)
                pids = descendants(process.pid)
                cpu = CpuSnapshot.take(pids)
                await asyncio.sleep(hold)  # a measurement interval: the idle worker's own CPU
                idle_cpu = CpuSnapshot.take(pids).since(cpu)
                rss_before, conns_before = total_rss(pids), connections()
                started = time.monotonic()
                sockets = await open_sockets(ws_url, tokens)
                opened_s = time.monotonic() - started
                await asyncio.sleep(3)
                rss_open, conns_open = total_rss(descendants(process.pid)), connections()
                cpu = CpuSnapshot.take(pids)
                await asyncio.sleep(hold)  # the same interval with K idle sockets (server pings every 20 s)
                sockets_cpu = CpuSnapshot.take(pids).since(cpu)
                alive = sum(1 for ws in sockets if ws.state.name == "OPEN")
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
                return {
                    "sockets": k, "open_after_hold": alive, "hold_s": hold, "open_s": round(opened_s, 2),
                    "rss_before_mb": round(rss_before / 2**20, 1), "rss_open_mb": round(rss_open / 2**20, 1),
                    "rss_per_socket_kb": round((rss_open - rss_before) / 1024 / k, 1),
                    "idle_cpu_ms_per_s": round(1000 * idle_cpu / hold, 2),
                    "sockets_cpu_ms_per_s": round(1000 * sockets_cpu / hold, 2),
                    "cpu_ms_per_socket_per_min": round(60 * 1000 * (sockets_cpu - idle_cpu) / hold / k, 3),
                    "db_connections": {"before": conns_before, "open": conns_open},
                }

            result = asyncio.run(scenario())
    finally:
        if not keep:
            _remove_tree(workdir)
    return {"measurement": "idle-sockets", "date": dt.date.today().isoformat(), "code": code_version(),
            "machine": _machine(), "versions": _versions(), **result}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_sockets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000, help="idle sockets (1 to 5000)")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds each CPU interval lasts")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.sockets <= 5000:
        parser.error("--sockets from 1 to 5000")
    result = measure(args.sockets, args.hold, args.keep_workdir)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{result['date']}-idle-sockets-k{args.sockets}.summary.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "versions", "code")}, indent=1))
    print(f"[bench] wrote {out}", flush=True)


if __name__ == "__main__":
    main()
