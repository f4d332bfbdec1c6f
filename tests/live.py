"""A real Cirkelline server (Daphne in a subprocess) on a free port, for client and load tests.

It uses the test database (so tests using it need `django_db(transaction=True)`) and the
environment a test gives it (model, latencies).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


# Servers listen on ports below the kernel's ephemeral range (32768-60999 on Linux), which every
# outgoing connection draws from: a port found free in that range can be taken by a client socket
# before the server binds it. Test processes running side by side (pytest-xdist) may still pick the
# same port at the same moment; the second server then fails to listen, and live_server starts it
# again on another.
SERVER_PORTS = range(20000, 32000)


def free_port() -> int:
    while True:
        port = random.choice(SERVER_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def test_database_url() -> str:
    """DATABASE_URL of the database this test process is using."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class PortTaken(Exception):
    """The server could not listen: another process took the port after free_port chose it."""


@contextmanager
def live_server(env: dict[str, str] | None = None, *, server: str = "daphne",
                args: tuple[str, ...] = ()) -> Iterator[str]:
    """Start a server, wait until it listens and answers /health, yield its base URL, stop it.
    `args`: more command-line options for Daphne (e.g. its websocket ping interval)."""
    with live_server_process(env, server=server, args=args) as started:
        yield started.base_url


@contextmanager
def live_server_process(env: dict[str, str] | None = None, *, server: str = "daphne",
                        args: tuple[str, ...] = ()) -> Iterator[_Server]:
    """As live_server, yielding the server itself: `base_url`, `proc` (a test may kill it), `output()`."""
    for attempt in range(5):
        try:
            started = _Server(env, server, args)
        except PortTaken:
            if attempt == 4:
                raise
            continue
        with started:
            yield started
        return


class _Server:
    def __init__(self, env: dict[str, str] | None, server: str, args: tuple[str, ...] = ()) -> None:
        port = free_port()
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.server_settings",
            "DATABASE_URL": test_database_url(),
            "GOOGLE_API_KEY": "",
            "GEMINI_API_KEY": "",
            "OPENAI_API_KEY": "",
            "CIRKELLINE_MODEL": "demo",
            "CIRKELLINE_SERVE_STATIC": "false",
            "CIRKELLINE_REDIS_PREFIX": settings.CIRKELLINE_REDIS_PREFIX,
            # One more model call and usage row after a first answer: on only where a test asks for it.
            "CIRKELLINE_AUTO_NAME_SESSIONS": "false",
            # Stopping a server (SIGTERM) drains it: runs a test left going get 3 s, not 30, before
            # they are cancelled, so the stop stays within its 10 s before SIGKILL.
            "CIRKELLINE_DRAIN_SECONDS": "3",
            **(env or {}),
        }
        if server == "daphne":
            cmd = [sys.executable, "-m", "daphne", "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=2048",
                   *args, "cirkelline_site.asgi:application"]
            # Daphne goes on running when it cannot listen; its log says whether it does.
            self.listening = f"Listening on TCP address 127.0.0.1:{port}"
        else:
            cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level",
                   "warning", "cirkelline_site.asgi:application"]
            self.listening = ""  # uvicorn exits when it cannot listen
        # The server's output goes to a file, not a pipe: nobody reads a pipe while the test runs, and
        # once its buffer (64 KiB of access log lines) is full the server blocks on its next log line.
        self.output_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=self.output_file, stderr=subprocess.STDOUT)
        self.base_url = f"http://127.0.0.1:{port}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def output(self) -> str:
        self.output_file.seek(0)
        return self.output_file.read().decode(errors="replace")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                output = self.output()
                if "address already in use" in output.lower():
                    raise PortTaken(output)
                raise RuntimeError(f"server exited early ({self.proc.returncode}):\n{output}")
            output = self.output()
            if "Listen failure" in output:
                raise PortTaken(output)
            if self.listening in output:
                try:
                    if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer /health within 30 s:\n{output}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is not None:  # killed by the test
            self.output_file.close()
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.output_file.close()

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
