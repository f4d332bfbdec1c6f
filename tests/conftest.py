"""Shared fixtures. Personas: alice and bob are ordinary users; staff is an admin.

Every test runs offline: provider keys are blanked and the team uses the scripted model
unless a test says otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import httpx
import pytest
from django.test import override_settings
from rest_framework_simplejwt.tokens import AccessToken

from chat.agents import scripted
from chat.api import request_threads
from chat.runs import teams
from chat.storage.executor import run_db


async def adb(fn, *args, **kwargs):
    """Run ORM code from an async test the way the app does (chat.storage.executor: pooled, closed after)."""
    return await run_db(fn, *args, **kwargs)


async def until(condition, within: float = 30.0):
    """`condition()` (sync: run off the loop, e.g. a query) once truthy, else its last value after
    `within` seconds. Polls: what it waits for is written by another process or thread."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await adb(condition)
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def ended_usage(run_id: str, within: float = 30.0):
    """The run's usage row once it has a terminal status (it is `running` from the run's admission
    on); None if it has none within `within` seconds. Polls: a server process writes it."""
    from metrics.models import RunStatus, RunUsage

    return await until(lambda: RunUsage.objects.filter(run_id=run_id).exclude(status=RunStatus.RUNNING).first(),
                       within)


@pytest.fixture(autouse=True)
def offline_team(settings, worker_redis_prefix):
    settings.CIRKELLINE_REDIS_PREFIX = worker_redis_prefix
    settings.GOOGLE_API_KEY = ""
    settings.OPENAI_API_KEY = ""
    settings.CIRKELLINE_MODEL = "scripted"
    settings.CIRKELLINE_SCRIPTED_LATENCY = 0.0
    # Naming a session is one more model call and usage row after a first answer: tests of naming
    # turn it on (tests/runs/test_naming.py); the others count only their runs' calls and rows.
    settings.CIRKELLINE_AUTO_NAME_SESSIONS = False
    teams.prototype.cache_clear()
    scripted.RECORDER.clear()
    scripted.FAILURES.clear()
    yield
    teams.prototype.cache_clear()
    scripted.FAILURES.clear()
    # A request thread kept for reuse holds the database connection of the test that used it.
    request_threads.release_idle_threads()


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashing():
    """Users' passwords hashed in milliseconds, not the half second per hash (and per login) of the
    real settings. Tests of hashing itself set PASSWORD_HASHERS themselves."""
    with override_settings(PASSWORD_HASHERS=["tests.hashers.QuickPBKDF2PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def worker_redis_prefix() -> str:
    """Redis keys of this test process live apart from any server's and earlier runs': the prefix
    tests.parallel gave the process before the settings (and CHANNEL_LAYERS) were read."""
    return os.environ["CIRKELLINE_REDIS_PREFIX"]


@pytest.fixture
def recorder() -> scripted.CallRecorder:
    return scripted.RECORDER


@pytest.fixture
def failures() -> scripted.FailurePlan:
    return scripted.FAILURES


@pytest.fixture
def use_latency(settings):
    """Give every scripted provider call `seconds` of latency (rebuilds the team)."""

    def apply(seconds: float) -> None:
        settings.CIRKELLINE_SCRIPTED_LATENCY = seconds
        teams.prototype.cache_clear()

    return apply


@pytest.fixture
def use_script(monkeypatch):
    """Give every scripted model of the run service's team `script` instead of the demo's (rebuilds the team)."""
    from chat.agents import providers

    def apply(script) -> None:
        monkeypatch.setattr(providers, "demo_script", script)
        teams.prototype.cache_clear()

    return apply


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-1")


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {AccessToken.for_user(user)}"}


@pytest.fixture
async def api():
    """An HTTP client for the ASGI application, in-process."""
    from cirkelline_site.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
        yield client


def error_body(response) -> dict:
    """An error's JSON body without its request id, which must be the response's X-Request-ID."""
    body = json.loads(response.content)
    assert body.pop("request_id") == response.headers["X-Request-ID"]
    return body


@dataclass
class Frame:
    event: str
    data: dict


def parse_sse(body: str) -> list[Frame]:
    """Split an SSE body into frames, checking AgentOS framing on the way: an `event:` and one
    `data:` line, and an `id:` line equal to the event's `event_index` (Cirkelline's addition)."""
    frames = []
    assert body.endswith("\n\n"), "every frame ends with a blank line"
    for chunk in body.split("\n\n"):
        if not chunk:
            continue
        lines = chunk.split("\n")
        if all(line.startswith(":") for line in lines):
            continue  # a comment (heartbeat)
        frame_id = None
        if lines[0].startswith("id: "):
            frame_id = int(lines.pop(0)[len("id: "):])
        assert len(lines) == 2, f"frame must be one event line and one data line: {chunk!r}"
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), chunk
        data = json.loads(lines[1][len("data: "):])
        assert data["event"] == lines[0][len("event: "):]
        assert frame_id == data.get("event_index"), chunk
        frames.append(Frame(event=data["event"], data=data))
    return frames
