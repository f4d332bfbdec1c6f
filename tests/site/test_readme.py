"""`make run` serves with no keys, and the README's curl walk-through works against it as written."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.live


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", readme, re.S)
    assert block, "README has no walk-through block"
    return block.group(1)


def test_make_run_serves_and_the_readme_walkthrough_works(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REDIS_URL", "CIRKELLINE_", "DJANGO_", "GOOGLE_", "GEMINI_",
                                "OPENAI_"))}
    env.update({"CIRKELLINE_VAR_DIR": str(tmp_path), "CIRKELLINE_SERVE_STATIC": "true"})
    log = open(tmp_path / "make-run.log", "w+")
    proc = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"make run exited:\n{(tmp_path / 'make-run.log').read_text()}"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "make run did not serve within 120 s"
            time.sleep(0.2)

        password_file = tmp_path / "admin-password"
        password = password_file.read_text().strip()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert f"with password: {password}" in (tmp_path / "make-run.log").read_text()
        assert httpx.get(f"{base}/admin/login/").status_code == 200
        assert httpx.get(f"{base}/static/admin/css/base.css").status_code == 200

        script = walkthrough().replace("BASE=http://127.0.0.1:7777", f"BASE={base}")
        script = script.replace("var/admin-password", str(password_file))
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "event: TeamRunStarted" in out and "event: TeamRunCompleted" in out
        assert "event: RunContent" in out  # the research specialist streamed its part
        assert '"content": "9"' in out  # the continued session answered
        # named after its first message, or already by the model after its first answer ("What is 2+2")
        assert '"session_name": "What is 2+2' in out and '"total_count": 2' in out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
