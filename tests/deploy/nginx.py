"""nginx in front of live Cirkelline workers, for the deployment tests: the shipped configuration
(deploy/nginx/cirkelline.conf.template), rendered as the official nginx image renders it (its
`${VAR}` names substituted from the environment), run by Debian's nginx under a private prefix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ..live import free_port

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx" / "cirkelline.conf.template"


def nginx_executable() -> str:
    """Debian's nginx; under CI (`CI=true`, where .ci/run installs it) a missing one fails the test."""
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        message = "nginx is not installed (apt-get install nginx-light): the deployment tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def render(variables: dict[str, str], *, replace: dict[str, str] | None = None) -> str:
    """The template with its `${NAME}` variables substituted (every one must be given), then
    `replace` applied (a test shortening a timeout), each of which must match."""
    text = TEMPLATE.read_text()
    names = set(re.findall(r"\$\{([A-Z_]+)\}", text))
    assert names == set(variables), f"the template's variables are {sorted(names)}"
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value)
    for old, new in (replace or {}).items():
        assert old in text, f"{old!r} is not in the template"
        text = text.replace(old, new)
    return text


def main_config(prefix: Path, site: Path) -> str:
    """A minimal nginx.conf around the site configuration (nginx's main and events contexts)."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers as root can write the temp dirs
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\ndaemon off;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {prefix / 'access.log'};\n{temp}\n"
            f"    include {site};\n"
            "}\n")


@contextmanager
def nginx(upstreams: list[str], *, replace: dict[str, str] | None = None) -> Iterator[str]:
    """nginx listening on a free port, proxying to `upstreams` (base URLs); yields its base URL."""
    executable = nginx_executable()
    port = free_port()
    servers = " ".join(f"server {url.removeprefix('http://')};" for url in upstreams)
    with tempfile.TemporaryDirectory(prefix="cirkelline-nginx-") as tmp:
        prefix = Path(tmp)
        site = prefix / "cirkelline.conf"
        site.write_text(render({"CIRKELLINE_LISTEN": f"127.0.0.1:{port}", "CIRKELLINE_UPSTREAMS": servers},
                               replace=replace))
        conf = prefix / "nginx.conf"
        conf.write_text(main_config(prefix, site))
        check = subprocess.run([executable, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen([executable, "-p", str(prefix), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 15
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"nginx exited ({proc.returncode}): {(prefix / 'error.log').read_text()}")
                try:
                    httpx.get(f"{base_url}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("nginx did not answer within 15 s") from None
                    time.sleep(0.05)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
