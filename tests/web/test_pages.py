"""The pages: who gets the chat, who gets the login page, and what the chat page is given."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_stranger_is_sent_to_the_login_page(client):
    """Guards against the chat (or a 404) answering people who are not logged in."""
    for path in ("/", "/c/some-session"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == f"/login/?next={path}"
    login = client.get("/login/")
    assert login.status_code == 200 and b'name="password"' in login.content


def test_logging_in_leads_to_the_chat_and_logging_out_ends_the_session(client, alice):
    """Guards against a login that does not stick, or a logout that leaves the session usable."""
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302
    wrong = client.post("/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and b"Please enter a correct username and password" in wrong.content


def test_failed_page_logins_are_throttled_like_token_logins(client, alice, settings):
    """Guards against the login page being an unthrottled way to guess passwords."""
    settings.CIRKELLINE_REDIS_PREFIX = f"{settings.CIRKELLINE_REDIS_PREFIX}-{uuid.uuid4().hex[:8]}"
    settings.CIRKELLINE_LOGIN_FAILURES_PER_USERNAME = 2
    for _ in range(2):
        wrong = client.post("/login/", {"username": "alice", "password": "x"})
        assert b"correct username and password" in wrong.content
    refused = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert refused.status_code == 200 and b"Too many failed logins for this username" in refused.content
    assert client.get("/").status_code == 302  # not logged in


def test_the_chat_page_is_configured_for_the_api_limits_and_team(alice, settings):
    """Guards against the page showing limits other than the ones the API enforces."""
    settings.CIRKELLINE_MAX_FILE_BYTES = 12345
    page = logged_in(alice).get("/c/abc")
    assert page.status_code == 200
    config = json.loads(re.search(rb'<script id="config" type="application/json">(.*?)</script>',
                                  page.content, re.S).group(1))
    assert config["user"] == "alice" and config["teamId"] == "cirkelline" and config["wsPath"] == "/ws/chat/"
    settings.CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX = 1234
    page = logged_in(alice).get("/c/abc")
    config = json.loads(re.search(rb'<script id="config" type="application/json">(.*?)</script>',
                                  page.content, re.S).group(1))
    assert config["limits"] == {"maxFiles": settings.CIRKELLINE_MAX_FILES, "maxFileBytes": 12345,
                                "maxMessageChars": settings.CIRKELLINE_MAX_MESSAGE_CHARS,
                                "displayNameChars": 100, "customInstructionsChars": 1234}
    assert b'id="profile-instructions" rows="6" maxlength="1234"' in page.content
    assert "Europe/Copenhagen" in config["timezones"] and "UTC" in config["timezones"]
    assert config["members"]["image-specialist"] == "Image Specialist"
    assert "image/png" in config["mediaTypes"]["image"]
    assert "unsafe-inline" not in page["Content-Security-Policy"]


def test_an_ill_formed_session_url_goes_back_to_a_new_chat(alice):
    """Guards against arbitrary path text reaching the page's configuration."""
    response = logged_in(alice).get("/c/<script>")
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize(("https", "secure"), [("true", "True"), ("", "False")])
def test_cookies_are_secure_when_the_site_is_served_over_https(https, secure):
    """Guards against login cookies travelling over plain HTTP on a TLS deployment (CIRKELLINE_TLS),
    and against the login cookie ever being readable by scripts or sent cross-site."""
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
            "s.SESSION_COOKIE_SAMESITE)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cirkelline_site.settings", "CIRKELLINE_TLS": https}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [secure, secure, "True", "Lax"]


def test_the_docs_page_names_every_websocket_frame_type(client):
    """/docs documents the websocket protocol: every frame type the consumer reads (`kind == "..."`)
    or sends (`"type": "..."`) in chat/ws is on the page."""
    import re
    from pathlib import Path

    import chat.ws

    source = "".join(path.read_text() for path in Path(chat.ws.__file__).parent.glob("*.py"))
    sent = set(re.findall(r'"type": ?"([a-z_]+)"', source))
    read = set(re.findall(r'kind == "([a-z_]+)"', source))
    types = sent | read
    assert {"run", "cancel", "watch", "auth", "ready", "error", "events", "run_started", "run_finished"} <= types
    page = client.get("/docs").content.decode()
    assert [t for t in sorted(types) if f"<code>{t}</code>" not in page] == []
    assert 'data-url="/openapi.json"' in page


def test_vendored_swagger_ui_is_the_recorded_release():
    """The files /docs serves are byte-identical to the npm release its README records."""
    import hashlib
    import re
    from pathlib import Path

    import chat.web

    folder = Path(chat.web.__file__).parent / "static" / "chat" / "vendor" / "swagger-ui"
    readme = (folder / "README.md").read_text()
    recorded = dict(re.findall(r"^\s+(\S+)\s+<- package/\S+\n\s+sha256 ([0-9a-f]{64})", readme, flags=re.M))
    assert set(recorded) == {"swagger-ui-bundle.js", "swagger-ui.css"}
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert (folder / "LICENSE").read_text().lstrip().startswith("Apache License")
