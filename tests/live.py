"""A real Cirkelline server (Daphne in a subprocess) on a free port, for client and load tests.

It uses the test database (so tests using it need `django_db(transaction=True)`) and the
environment a test gives it (model, latencies).
"""

from __future__ import annotations

import os
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """DATABASE_URL of the database this test process is using."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def live_server(env: dict[str, str] | None = None, *, server: str = "daphne") -> Iterator[str]:
    """Start a server, wait for /health, yield its base URL, stop it."""
    port = free_port()
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cirkelline_site.settings",
        "DATABASE_URL": test_database_url(),
        "GOOGLE_API_KEY": "",
        "GEMINI_API_KEY": "",
        "OPENAI_API_KEY": "",
        "CIRKELLINE_MODEL": "demo",
        "CIRKELLINE_SERVE_STATIC": "false",
        "CIRKELLINE_REDIS_PREFIX": settings.CIRKELLINE_REDIS_PREFIX,
        **(env or {}),
    }
    if server == "daphne":
        cmd = [sys.executable, "-m", "daphne", "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=2048",
               "cirkelline_site.asgi:application"]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level",
               "warning", "cirkelline_site.asgi:application"]
    # The server's output goes to a file, not a pipe: nobody reads a pipe while the test runs, and
    # once its buffer (64 KiB of access log lines) is full the server blocks on its next log line.
    output_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=output_file, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                output_file.seek(0)
                output = output_file.read().decode(errors="replace")
                raise RuntimeError(f"server exited early ({proc.returncode}):\n{output}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /health within 30 s")
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        output_file.close()
