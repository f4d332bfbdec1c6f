"""The shipped deployment, tested: deploy/nginx's configuration in front of two workers on
PostgreSQL + Redis. Through nginx only: SSE streams frame by frame, websockets upgrade and stream,
the request id reaches the worker and its usage row."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid

import httpx
import pytest
from django.conf import settings
from websockets.asyncio.client import connect

from metrics.models import RunUsage

from ..conftest import adb, bearer, parse_sse
from ..live import live_server
from ..ws.conftest import FRAME_WAIT, token_for
from .nginx import main_config, nginx, nginx_executable, render

# Each provider call of the scripted model takes this long: a run is three calls.
LATENCY = 0.4
WORKER_ENV = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": str(LATENCY)}


def test_the_shipped_configuration_is_valid_nginx(tmp_path):
    site = tmp_path / "site.conf"
    site.write_text(render({"CIRKELLINE_LISTEN": "127.0.0.1:1", "CIRKELLINE_UPSTREAMS": "server 127.0.0.1:2;"}))
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(tmp_path, site))
    check = subprocess.run([nginx_executable(), "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker):
    """Two workers sharing the test database and Redis, nginx in front: (nginx URL, worker URLs)."""
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("several workers need PostgreSQL and Redis (the CI PostgreSQL + Redis pass runs this)")
    with django_db_blocker.unblock(), live_server(WORKER_ENV) as first, live_server(WORKER_ENV) as second, \
            nginx([first, second]) as proxy:
        yield proxy, (first, second)



@pytest.mark.django_db(transaction=True)
@pytest.mark.live
async def test_an_sse_run_streams_through_nginx_frame_by_frame_with_its_request_id(cluster, alice):
    """Guards against a proxy buffering the stream (frames would arrive together at the end) and
    against the request id being dropped or replaced on the way."""
    proxy, _ = cluster
    request_id = f"deploy-{uuid.uuid4().hex}"
    arrivals: list[tuple[float, str]] = []
    async with httpx.AsyncClient(timeout=60) as http:
        sent = time.monotonic()
        async with http.stream("POST", f"{proxy}/teams/cirkelline/runs", headers={**bearer(alice),
                               "X-Request-ID": request_id}, data={"message": "Please research Copenhagen"}) as response:
            assert response.status_code == 200
            assert response.headers["x-request-id"] == request_id
            assert response.headers["content-type"].startswith("text/event-stream")
            body = ""
            async for chunk in response.aiter_text():
                body += chunk
                arrivals.append((time.monotonic(), chunk))
    frames = parse_sse(body.replace(": ping\n\n", ""))  # heartbeats, if any, are comments
    assert frames[-1].event == "TeamRunCompleted"
    first, last = arrivals[0][0], arrivals[-1][0]
    # Unbuffered, the first frames arrive a provider call or more before the end of a three-call
    # run; buffered, everything arrives at once at the end.
    assert (last - first) / (last - sent) > 0.5, [round(t - sent, 2) for t, _ in arrivals]
    usage = await adb(lambda: RunUsage.objects.get(run_id=frames[-1].data["run_id"]))
    assert usage.request_id == request_id
    assert usage.status == "completed"


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
async def test_a_websocket_run_streams_through_nginx(cluster, alice):
    """Guards against a proxy that does not pass the websocket upgrade on (the handshake fails)."""
    proxy, _ = cluster
    async with connect(proxy.replace("http", "ws") + "/ws/chat/", subprotocols=["bearer", token_for(alice)]) as ws:
        assert ws.subprotocol == "bearer"
        frames = [json.loads(await ws.recv())]
        assert frames[0]["type"] == "ready"
        await ws.send(json.dumps({"type": "run", "message": "What is 2+2?"}))
        while frames[-1]["type"] != "run_finished":
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), FRAME_WAIT)))
    events = [e for f in frames if f["type"] == "events" for e in f["events"]]
    assert any(e["event"] == "TeamRunContent" for e in events)
    run_id = frames[-1]["run_id"]
    usage = await adb(lambda: RunUsage.objects.get(run_id=run_id))
    assert usage.status == "completed"
