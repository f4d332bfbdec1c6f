"""Processes and databases of a benchmark scenario: fake provider, servers, PostgreSQL.

Every process is started in its own session (process group) and stopped through a context
manager, SIGTERM then SIGKILL to *that* group, so an error anywhere in a round still leaves
no server, worker or provider behind. Output goes to log files in the scenario's work
directory, never to pipes: a chatty server must not block on a full pipe mid-benchmark.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .common import PYTHON, ROOT, CallProfile
from .procstats import wait_for

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess:
    """A child process in its own process group, logging to ``log``; stopped on exit."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], log: Path, *, name: str) -> None:
        self.cmd = list(cmd)
        self.env = env
        self.log = log
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> ManagedProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # Workers of a multi-process server share the group; make sure none outlived the parent.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeProviderProcess(ManagedProcess):
    """``python -m tests.doubles.fake_openai`` on a free port with a timing profile."""

    def __init__(self, profile: CallProfile, workdir: Path, env: dict[str, str] | None = None) -> None:
        cmd = [PYTHON, "-m", "tests.doubles.fake_openai", "--port", "0", *profile.provider_args()]
        super().__init__(cmd, env or dict(os.environ), workdir / "fake-provider.log", name="fake provider")
        self.base_url = ""

    def start(self) -> FakeProviderProcess:
        super().start()
        pattern = re.compile(r"fake provider listening on (\S+)")

        def listening() -> bool:
            self.check_alive()
            found = pattern.search(self.log.read_text(errors="replace"))
            if found:
                self.base_url = found.group(1)
            return bool(found)

        try:
            wait_for(listening, 20, "the fake provider to listen")
        except BaseException:
            self.stop()
            raise
        return self


def wait_healthy(process: ManagedProcess, url: str, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200 (the server is up and its app imported)."""

    def healthy() -> bool:
        process.check_alive()
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout, f"{process.name} to answer {url}", interval=0.2)


def run_checked(cmd: Sequence[str], env: dict[str, str], log: Path, timeout: float, what: str) -> None:
    """Run a setup command to completion (bounded), failing with its log tail."""
    with open(log, "ab") as out:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{tail}")


# --- databases --------------------------------------------------------------------------------


def _pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A freshly created PostgreSQL database (dropped first if it exists, and afterwards)."""
    import psycopg
    from psycopg import sql

    if not re.fullmatch(r"bench_[a-z0-9_]+", name):
        raise ValueError("benchmark databases are named bench_<something>")

    def recreate(create: bool) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            if create:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))

    recreate(True)
    try:
        yield _pg_url(name)
    finally:
        with contextlib.suppress(Exception):
            recreate(False)


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server under test."""

    kind: str  # "cirkelline" | "sync" | "agentos"
    server: str  # "daphne" | "uvicorn"
    workers: int = 1
    daphne_backlog: int | None = 2048  # as `make run` starts it; None: `-b/-p` (Twisted's default 50)

    def command(self, port: int) -> list[str]:
        app = "bench.agentos_app:app" if self.kind == "agentos" else "bench.asgi:application"
        if self.server == "daphne":
            if self.workers != 1:
                raise ValueError("Daphne runs one process; use uvicorn for several workers")
            if self.daphne_backlog is None:
                bind = ["-b", "127.0.0.1", "-p", str(port)]
            else:
                bind = ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog={self.daphne_backlog}"]
            return [PYTHON, "-m", "daphne", *bind, app]
        if self.server == "uvicorn":
            # h11: the protocol every recorded uvicorn/AgentOS figure was measured on (with httptools
            # installed, a test dependency of the fake provider, uvicorn would pick it instead).
            cmd = [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                   "--log-level", "warning", "--timeout-graceful-shutdown", "5", "--http", "h11"]
            if self.workers > 1:
                cmd += ["--workers", str(self.workers)]
            return [*cmd, app]
        raise ValueError(f"unknown server {self.server!r}")


def provider_free_env() -> dict[str, str]:
    """The harness's environment without anything that could reach a real provider or
    another database: keys blanked, DATABASE_URL / REDIS_URL dropped (scenarios set them)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"GOOGLE_API_KEY": "", "GEMINI_API_KEY": "", "OPENAI_API_KEY": "", "AGNO_TELEMETRY": "false",
                "PYTHONUNBUFFERED": "1"})
    return env


def wait_stats_files(stats_dir: Path, server: ManagedProcess, url: str, workers: int, timeout: float = 30.0) -> None:
    """Make every worker start its loop monitor (it starts on a process's first request):
    send /health on fresh connections until each worker has written its stats file."""
    from .procstats import descendants, read_loop_stats

    def every_worker_reports() -> bool:
        server.check_alive()
        alive = set(descendants(server.pid))
        if len([pid for pid in read_loop_stats(stats_dir) if pid in alive]) >= workers:
            return True
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=2, headers={"Connection": "close"})
        return False

    wait_for(every_worker_reports, timeout, f"{workers} worker(s) to write loop stats", interval=0.1)


def stats_pids(stats_dir: Path, server: ManagedProcess) -> list[int]:
    """Server processes (root or workers) that write loop stats and are still alive."""
    from .procstats import descendants, read_loop_stats

    alive = set(descendants(server.pid))
    return sorted(pid for pid in read_loop_stats(stats_dir) if pid in alive)


def wait_until_idle(stats_dir: Path, pids: Sequence[int], timeout: float = 60.0) -> None:
    """Wait until no server process reports a live run (the previous round is fully over)."""
    from .procstats import read_loop_stats

    started = time.time()

    def idle() -> bool:
        stats = read_loop_stats(stats_dir)
        return all(pid in stats and stats[pid]["written_at"] > started and stats[pid]["live_runs"] == 0
                   for pid in pids)

    wait_for(idle, timeout, "the server to have no live runs")
