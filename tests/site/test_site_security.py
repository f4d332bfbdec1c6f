"""Site hygiene: a private SQLite file, no weak admin password, HSTS and secure cookies over TLS."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]


def _run_python(code: str, var_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with Django set up from the environment given (and no other)."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"DJANGO_SETTINGS_MODULE": "cirkelline_site.settings", "CIRKELLINE_VAR_DIR": str(var_dir),
             "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_wal_files_are_readable_by_their_owner_only(tmp_path):
    """Guards against var/db.sqlite3 (password hashes, every chat) created 0644, readable by every
    account on the machine, and its -wal/-shm files with it."""
    old_umask = os.umask(0o022)  # what a login shell usually has
    try:
        result = _run_python(
            "import json, os, stat\n"
            "from django.db import connection\n"
            "with connection.cursor() as c:\n"
            "    c.execute('CREATE TABLE t (x integer)'); c.execute('INSERT INTO t VALUES (1)')\n"
            "    var = os.environ['CIRKELLINE_VAR_DIR']\n"  # while connected: SQLite removes the WAL on close
            "    print(json.dumps({n: stat.S_IMODE(os.stat(os.path.join(var, n)).st_mode)\n"
            "                      for n in os.listdir(var) if n.startswith('db.sqlite3')}))\n",
            tmp_path)
    finally:
        os.umask(old_umask)
    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout)
    assert modes == {"db.sqlite3": 0o600, "db.sqlite3-wal": 0o600, "db.sqlite3-shm": 0o600}
    assert _mode(tmp_path / "db.sqlite3") == 0o600


def test_an_existing_world_readable_database_is_tightened_at_start_up(tmp_path):
    (tmp_path / "db.sqlite3").touch(mode=0o644)
    (tmp_path / "db.sqlite3").chmod(0o644)
    result = _run_python("", tmp_path)
    assert result.returncode == 0, result.stderr
    assert _mode(tmp_path / "db.sqlite3") == 0o600


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["admin", "12345678", "password", "short"])
def test_ensure_admin_refuses_a_weak_password_from_the_environment(settings, password):
    """Guards against CIRKELLINE_ADMIN_PASSWORD=admin creating a superuser anyone can guess."""
    settings.CIRKELLINE_ADMIN_USERNAME = "admin"
    settings.CIRKELLINE_ADMIN_PASSWORD = password
    with pytest.raises(CommandError, match="CIRKELLINE_ADMIN_PASSWORD is too weak"):
        call_command("ensure_admin")
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_ensure_admin_accepts_a_strong_password(settings):
    settings.CIRKELLINE_ADMIN_PASSWORD = "correct-horse-battery-staple-7"
    call_command("ensure_admin")
    admin = get_user_model().objects.get(username=settings.CIRKELLINE_ADMIN_USERNAME)
    assert admin.is_superuser and admin.check_password("correct-horse-battery-staple-7")


def test_tls_settings_come_from_the_environment(tmp_path):
    """Guards against a TLS deployment with no HSTS, cookies sent over plain http and no redirect."""
    show = ("from django.conf import settings as s\n"
            "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, "
            "s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)\n")
    plain = _run_python(show, tmp_path)
    tls = _run_python(show, tmp_path, CIRKELLINE_TLS="true")
    tuned = _run_python(show, tmp_path, CIRKELLINE_TLS="true", CIRKELLINE_HSTS_SECONDS="3600",
                        CIRKELLINE_HSTS_INCLUDE_SUBDOMAINS="true", CIRKELLINE_HSTS_PRELOAD="true",
                        CIRKELLINE_SSL_REDIRECT="false")
    assert plain.stdout.split() == ["0", "False", "False", "False", "False", "False"], plain.stderr
    assert tls.stdout.split() == ["31536000", "False", "False", "True", "True", "True"], tls.stderr
    assert tuned.stdout.split() == ["3600", "True", "True", "False", "True", "True"], tuned.stderr


@pytest.mark.django_db(transaction=True)
async def test_hsts_is_sent_over_https_on_api_and_static_responses_when_configured():
    """Guards against HSTS missing when configured, on static files in particular."""
    from django.core.handlers.asgi import ASGIHandler

    with override_settings(SECURE_HSTS_SECONDS=3600, SECURE_HSTS_INCLUDE_SUBDOMAINS=True, SECURE_HSTS_PRELOAD=True,
                           SECURE_SSL_REDIRECT=True):
        app = ASGIHandler()  # middleware read their settings when the handler is built
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as https:
            responses = [await https.get("/health"), await https.get("/static/admin/css/base.css"),
                         await https.get("/no/such/page")]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as plain:
            redirected = await plain.get("/teams")
            probe = await plain.get("/health")
    assert [r.status_code for r in responses] == [200, 200, 404]
    for response in responses:
        assert response.headers["strict-transport-security"] == "max-age=3600; includeSubDomains; preload"
    assert redirected.status_code == 301 and redirected.headers["location"] == "https://testserver/teams"
    assert probe.status_code == 200 and "strict-transport-security" not in probe.headers
