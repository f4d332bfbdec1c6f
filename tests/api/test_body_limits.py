"""Request bodies are capped per route before anything parses them, and a large body that is
allowed is parsed off the event loop: no client holds /health with a body."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from chat.api.limits import BodyLimit
from chat.models import ChatSession
from metrics.models import RunUsage
from tests.conftest import adb, bearer

from ..live import live_server

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
SESSION = "0" * 8 + "-0000-4000-8000-" + "0" * 12


def nested_body(size: int) -> bytes:
    """A JSON object of about `size` bytes: many small nested objects (the costly kind to parse),
    no `message` (so a run route refuses it with a 400 once it is parsed, and nothing runs)."""
    one = json.dumps({"a": {"b": [1, 2, {"c": "x"}]}})
    count = size // (len(one) + 1)
    return ('{"session_state":{"x":[' + ",".join([one] * count) + "]}}").encode()


async def test_a_rename_body_over_the_routes_limit_is_413_before_authentication(api, alice, settings):
    settings.CIRKELLINE_MAX_API_BODY_BYTES = 1024
    big = json.dumps({"session_name": "x" * 2000})
    for headers in (bearer(alice), {}):
        response = await api.post(f"/sessions/{SESSION}/rename", content=big,
                                  headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["limit"] == 1024
        assert "too large" in response.json()["detail"]
    small = await api.post(f"/sessions/{SESSION}/rename", json={"session_name": "ok"}, headers=bearer(alice))
    assert small.status_code == 404  # within the limit: on to the session lookup


async def test_run_bodies_have_their_own_limit_and_files_a_larger_one(api, alice, settings):
    settings.CIRKELLINE_MAX_API_BODY_BYTES = 1024
    settings.CIRKELLINE_MAX_RUN_BODY_BYTES = 4096
    settings.CIRKELLINE_MAX_FILE_BYTES = 10_000
    within = await api.post(RUNS, json={"message": "x" * 3000, "stream": False}, headers=bearer(alice))
    over = await api.post(RUNS, json={"message": "x" * 5000, "stream": False}, headers=bearer(alice))
    as_form = await api.post(RUNS, data={"message": "x" * 5000, "stream": "false"}, headers=bearer(alice))
    with_file = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice),
                               files=[("files", ("notes.txt", b"y" * 8000, "text/plain"))])
    assert (within.status_code, over.status_code, as_form.status_code, with_file.status_code) == (200, 413, 413, 200)
    assert over.json()["limit"] == 4096
    assert await adb(RunUsage.objects.count) == 2


async def test_a_body_without_a_length_is_counted_as_it_arrives(settings):
    """A chunked body has no Content-Length: the middleware counts what arrives, tells the app the
    client left once the limit is passed, and answers 413 itself."""
    settings.CIRKELLINE_MAX_API_BODY_BYTES = 1000
    seen: list[dict] = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                return

    chunks = [{"type": "http.request", "body": b"x" * 400, "more_body": True} for _ in range(5)]
    sent: list[dict] = []

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/sessions/abc/rename",
             "headers": [(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json")]}
    await BodyLimit(app)(scope, receive, send)
    assert [m["type"] for m in seen] == ["http.request", "http.request", "http.disconnect"]
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["limit"] == 1000


async def _health_latencies(client: httpx.AsyncClient, until: asyncio.Future) -> list[float]:
    latencies = []
    while not until.done():
        started = time.perf_counter()
        assert (await client.get("/health")).status_code == 200
        latencies.append(time.perf_counter() - started)
    return latencies


async def _stall(base_url: str, hostile) -> tuple[float, float, float]:
    """(/health's median latency when idle, its worst latency while `hostile` runs, how long
    `hostile` took)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        idle = []
        for _ in range(10):
            started = time.perf_counter()
            await client.get("/health")
            idle.append(time.perf_counter() - started)
        started = time.perf_counter()
        attack = asyncio.ensure_future(hostile(client))
        await asyncio.sleep(0)
        latencies = await _health_latencies(client, attack)
        await attack
        took = time.perf_counter() - started
    return sorted(idle)[5], max(latencies), took


@pytest.mark.live
async def test_large_allowed_bodies_do_not_hold_health(alice):
    """Eight run bodies of ~500 KiB of small objects (allowed, parsed, then refused for their
    missing message). Parsed on the event loop (CIRKELLINE_PARSE_OFF_LOOP_BYTES above their size),
    /health's worst answer took half as long as the eight bodies did; in the parse threads, about
    a twentieth."""
    body = nested_body(500 * 1024)
    headers = {**bearer(alice), "Content-Type": "application/json"}

    async def hostile(client):
        responses = await asyncio.gather(*(client.post(RUNS, content=body, headers=headers) for _ in range(8)))
        assert {r.status_code for r in responses} == {400}

    with live_server() as base_url:
        idle, worst, took = await _stall(base_url, hostile)
    assert worst < took / 4, (idle, worst, took)


@pytest.mark.live
async def test_a_huge_rename_body_is_refused_on_its_length_without_a_stall(alice):
    """The body is never read: the view answers 413 from the declared length, so the refusal has
    the site's headers (a request id, CORS for an allowed origin) like any other answer."""
    body = nested_body(8 * 1024 * 1024)
    session = await adb(ChatSession.objects.create, user=alice, session_id=SESSION, session_name="before")
    origin = "http://ui.example:3000"
    headers = {**bearer(alice), "Content-Type": "application/json", "Origin": origin}

    with live_server({"CIRKELLINE_CORS_ORIGINS": origin}) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            response = await client.post(f"/sessions/{session.session_id}/rename", content=body, headers=headers)
            login = await client.post("/api/token/", content=json.dumps({"username": "x" * 100_000}),
                                      headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["limit"] == 64 * 1024
    assert response.headers["x-request-id"]
    assert response.headers["access-control-allow-origin"] == origin
    assert (await adb(ChatSession.objects.get, pk=session.pk)).session_name == "before"
    assert (login.status_code, login.json()["limit"]) == (413, 64 * 1024)
