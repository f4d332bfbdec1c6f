"""agno's agent-ui (a Next.js app), built once per machine and started for the browser tests.

The source is vendored in tests/web/vendor/agent-ui/ (agno's agent-ui at a pinned commit, with a
patch that lets it build offline), so a clean clone has it; `AGENT_UI_SOURCE` names another folder
holding the same two files. The build lands in a cache folder keyed by the hash of that source,
the patch, this recipe and Node's major version (`~/.cache/cirkelline-agent-ui/<key>/`, or
`AGENT_UI_CACHE`), so it happens once per machine and again only when one of them changes.
node_modules and the build output never enter the repository.

    python -m tests.web.agent_ui build      # build unless cached (CI: `make agent-ui`); prints the folder
    python -m tests.web.agent_ui path       # the folder if built, else exit status 1
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TARBALL = "agent-ui-c084377.tar.gz"
PATCH = "agent-ui-offline.patch"
# Changing how it is built changes the cache key (a stale build is never reused).
RECIPE = "npm install --no-audit --no-fund; next build; v1"
BUILT_MARK = ".cirkelline-built"
ENV = {"NEXT_TELEMETRY_DISABLED": "1", "npm_config_update_notifier": "false", "npm_config_fund": "false",
       "npm_config_audit": "false"}


class AgentUiMissing(RuntimeError):
    """Its source, Node or its build is missing (the message says which and what to run)."""


def source_dir() -> Path:
    """The folder holding agent-ui's tarball and patch."""
    if os.environ.get("AGENT_UI_SOURCE"):
        candidates = [Path(os.environ["AGENT_UI_SOURCE"])]
    else:
        candidates = [ROOT / "tests" / "web" / "vendor" / "agent-ui"]
    for folder in candidates:
        if (folder / TARBALL).is_file() and (folder / PATCH).is_file():
            return folder
    raise AgentUiMissing(f"agent-ui's source ({TARBALL} + {PATCH}) is not in {', '.join(map(str, candidates))}; "
                         "set AGENT_UI_SOURCE to its folder")


def node_major() -> str:
    if not shutil.which("node") or not shutil.which("npm"):
        raise AgentUiMissing("Node.js and npm are needed to build agent-ui (apt-get install nodejs npm)")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return version.lstrip("v").split(".")[0]


def build_dir() -> Path:
    """Where the build for this source, patch, recipe and Node lives (built or not)."""
    source = source_dir()
    digest = hashlib.sha256()
    for part in ((source / TARBALL).read_bytes(), (source / PATCH).read_bytes(), RECIPE.encode(),
                 node_major().encode()):
        digest.update(hashlib.sha256(part).digest())
    cache = Path(os.environ.get("AGENT_UI_CACHE") or Path.home() / ".cache/cirkelline-agent-ui")
    return cache / digest.hexdigest()[:16]


def built_dir() -> Path:
    """The finished build, or AgentUiMissing saying how to make it."""
    folder = build_dir()
    if not (folder / BUILT_MARK).is_file():
        raise AgentUiMissing(f"agent-ui is not built in {folder}: run `make agent-ui` (about 2 minutes)")
    return folder


def _run(cmd: list[str], cwd: Path) -> None:
    print(f"agent-ui: $ {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=cwd, env={**os.environ, **ENV})
    if result.returncode != 0:
        raise SystemExit(f"agent-ui: `{' '.join(cmd)}` failed with exit status {result.returncode}")


def build() -> Path:
    """Build agent-ui unless this source is built already; the build folder. Fails loudly."""
    folder = build_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time per machine: a second one waits, then finds the build done.
    with open(folder.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / BUILT_MARK).is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted build: start over
        folder.mkdir()
        source = source_dir()
        with tarfile.open(source / TARBALL) as tar:
            tar.extractall(folder, filter="data")
        _run(["patch", "-p1", "-i", str(source / PATCH)], folder)
        _run(["npm", "install", "--no-audit", "--no-fund"], folder)
        _run([str(folder / "node_modules/.bin/next"), "build"], folder)
        (folder / BUILT_MARK).write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    return folder


@contextlib.contextmanager
def serve(port: int) -> Iterator[str]:
    """Start the built agent-ui (`next start`) on 127.0.0.1:`port`; yield its URL on localhost, stop it."""
    folder = built_dir()
    output = tempfile.TemporaryFile()
    # Its own process group: `next start` runs a worker, and both must stop with it.
    proc = subprocess.Popen([str(folder / "node_modules/.bin/next"), "start", "-p", str(port), "-H", "127.0.0.1"],
                            cwd=folder, env={**os.environ, **ENV}, stdout=output, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                output.seek(0)
                raise RuntimeError(f"agent-ui exited early ({proc.returncode}):\n{output.read().decode()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("agent-ui did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        output.close()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "build"
    try:
        if command == "build":
            print(build())
        elif command == "path":
            print(built_dir())
        else:
            print(__doc__)
            return 2
    except AgentUiMissing as exc:
        print(f"agent-ui: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
