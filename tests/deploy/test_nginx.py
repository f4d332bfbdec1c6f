"""The shipped deployment, tested: deploy/nginx's configuration in front of two workers on
PostgreSQL + Redis. Through nginx only: SSE streams frame by frame, websockets upgrade and stream,
the request id reaches the worker and its usage row; a page cut off mid-answer resumes it on either
worker; a worker killed mid-run (SIGKILL) leaves its run closed as `worker_lost` and its client's
resumed stream told, while nginx sends everything else to the worker that lives; every run started
through nginx has exactly one usage row and none is left running."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid

import httpx
import pytest
from django.conf import settings
from websockets.asyncio.client import connect

from chat.models import ChatRun
from metrics.models import RunUsage

from ..conftest import adb, bearer, parse_sse
from ..live import live_server, live_server_process
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


async def ws_frames_until(ws, predicate) -> list[dict]:
    frames = []
    while not frames or not predicate(frames[-1]):
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), FRAME_WAIT)))
    return frames


def events_of(frames: list[dict], run_id: str) -> list[dict]:
    return [e for f in frames if f["type"] == "events" and f["run_id"] == run_id for e in f["events"]]


def text_of(events: list[dict]) -> str:
    return "".join(e.get("content") or "" for e in events if e["event"] == "TeamRunContent")


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
async def test_a_page_cut_off_mid_answer_resumes_it_through_nginx_on_either_worker(cluster, alice):
    """Guards against a resume that only works on the worker running the run (nginx sends the new
    socket wherever it likes), and against a gap or a repeated word where the answer resumes. Two
    new sockets resume from the same point one after the other: nginx's round robin puts them on
    different workers, so both the run's own worker and the other one are tried."""
    proxy, _ = cluster
    socket_url = proxy.replace("http", "ws") + "/ws/chat/"
    async with connect(socket_url, subprotocols=["bearer", token_for(alice)]) as ws:
        await ws_frames_until(ws, lambda f: f["type"] == "ready")
        await ws.send(json.dumps({"type": "run", "message": "Please research Copenhagen"}))
        seen = await ws_frames_until(ws, lambda f: f["type"] == "events" and any(
            e["event"] == "TeamRunContent" for e in f["events"]))
        started = next(f for f in seen if f["type"] == "run_started")
        run_id, session_id = started["run_id"], started["session_id"]
    # The socket is gone mid-answer (a network blip): the run goes on.
    before = events_of(seen, run_id)
    last_seq = before[-1]["seq"]
    resumed_texts = []
    for _ in range(2):
        async with connect(socket_url, subprotocols=["bearer", token_for(alice)]) as ws:
            await ws_frames_until(ws, lambda f: f["type"] == "ready")
            await ws.send(json.dumps({"type": "watch", "session_id": session_id, "after": {run_id: last_seq}}))
            frames = await ws_frames_until(ws, lambda f: f["type"] == "run_finished" and f["run_id"] == run_id)
        after = events_of(frames, run_id)
        indexes = [e["event_index"] for e in after]
        assert indexes and indexes[0] > before[-1]["event_index"] and indexes == sorted(set(indexes)), indexes
        assert after[-1]["event"] == "TeamRunCompleted"
        resumed_texts.append(text_of(before + after))
    usage = await adb(lambda: RunUsage.objects.get(run_id=run_id))
    assert usage.status == "completed"
    stored = await adb(lambda: ChatRun.objects.get(run_id=run_id).payload["content"])
    assert resumed_texts == [stored, stored]


# Each call of the scripted model takes this long in the killed-worker test: the run is live for
# several seconds, the lease and the reaper act within about a second (settings).
KILL_ENV = {
    "CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": "1.5",
    "CIRKELLINE_WORKER_HEARTBEAT_SECONDS": "0.3", "CIRKELLINE_WORKER_LEASE_SECONDS": "1.2",
    "CIRKELLINE_REAPER_INTERVAL_SECONDS": "0.5", "CIRKELLINE_LIVE_LEDGER_SECONDS": "0.1",
}


@pytest.fixture
def doomed_cluster(django_db_setup, django_db_blocker):
    """Two worker processes (one to be killed) behind nginx: (nginx URL, the two _Servers)."""
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("several workers need PostgreSQL and Redis (the CI PostgreSQL + Redis pass runs this)")
    env = {**KILL_ENV, "REDIS_URL": settings.REDIS_URL}
    with django_db_blocker.unblock(), live_server_process(env) as first, live_server_process(env) as second, \
            nginx([first.base_url, second.base_url]) as proxy:
        yield proxy, (first, second)


async def _sse_data(lines) -> list[dict]:
    """The data of every frame read until the stream ends or is cut (a worker killed under it)."""
    seen = []
    try:
        async for line in lines:
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    except httpx.HTTPError:  # nginx passes the cut on: the body ends short
        pass
    return seen


async def first_event_and_worker(lines, by_pid: dict) -> tuple[dict, object]:
    """The first event of a streamed run (its SSE lines) and the worker (of `by_pid`) its usage
    row names as the run's owner."""
    async for line in lines:
        if line.startswith("data: "):
            first = json.loads(line[6:])
            break
    row = await adb(lambda: RunUsage.objects.get(run_id=first["run_id"]))
    return first, by_pid[int(row.worker.split(":")[-2])]


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
async def test_a_worker_killed_mid_run_behind_nginx_loses_no_run(doomed_cluster, alice, bob):
    """Guards against a deployment where one dead worker loses runs: its run left `running` (or
    never billed), its client's resume hanging on a run nobody will end, requests still sent to
    the dead worker, another user's run on the living worker disturbed, a run counted twice."""
    proxy, workers = doomed_cluster
    by_pid = {w.proc.pid: w for w in workers}
    async with httpx.AsyncClient(timeout=60) as http:
        async with http.stream("POST", f"{proxy}/teams/cirkelline/runs", headers=bearer(alice),
                               data={"message": "Please research the history of Copenhagen"}) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            first, doomed = await first_event_and_worker(lines, by_pid)
            alices = first["run_id"]
            # bob's run, sent next: nginx's round robin gives it to the other worker.
            bobs = asyncio.create_task(http.post(f"{proxy}/teams/cirkelline/runs", headers=bearer(bob),
                                                 data={"message": "Please research Aarhus", "stream": "false"}))
            bob_row = None
            while bob_row is None:
                bob_row = await adb(lambda: RunUsage.objects.filter(user=bob).first())
                await asyncio.sleep(0.05)
            assert by_pid[int(bob_row.worker.split(":")[-2])] is not doomed
            doomed.proc.send_signal(signal.SIGKILL)
            doomed.proc.wait()
            seen = [first] + await _sse_data(lines)
        assert seen[-1]["event"] not in ("TeamRunCompleted", "TeamRunError")  # cut off, not ended

        # The client resumes through nginx: the dead worker refuses connections, nginx tries the
        # other one, which tells the end once the reaper closed the run.
        resumed = await http.post(f"{proxy}/teams/cirkelline/runs/{alices}/resume", headers=bearer(alice),
                                  data={"last_event_index": str(seen[-1]["event_index"])})
        assert resumed.status_code == 200, resumed.text
        frames = [f for f in parse_sse(resumed.text) if f.event not in ("replay", "catch_up", "subscribed")]
        assert frames[-1].event == "TeamRunError" and frames[-1].data["error_type"] == "worker_lost", resumed.text

        # Requests keep being answered through nginx, by the worker that lives.
        again = await http.post(f"{proxy}/teams/cirkelline/runs", headers=bearer(alice),
                                data={"message": "What is 2+2?", "stream": "false"})
        assert again.status_code == 200 and again.json()["status"] == "COMPLETED", again.text
        bob_response = await bobs
    assert bob_response.status_code == 200 and bob_response.json()["status"] == "COMPLETED"

    # Every run started through nginx: one row each, none running, the dead one closed as lost.
    rows = await adb(lambda: list(RunUsage.objects.filter(user__in=[alice, bob]).values_list("run_id", "status",
                                                                                             "error_type")))
    assert sorted(r[0] for r in rows) == sorted([alices, bob_row.run_id, again.json()["run_id"]])
    assert dict((r[0], r[1:]) for r in rows) == {alices: ("error", "worker_lost"),
                                                 bob_row.run_id: ("completed", ""),
                                                 again.json()["run_id"]: ("completed", "")}


# A proxy whose idle timeout is shorter than a provider call: only heartbeats keep a run's
# stream and an idle websocket open through it.
PROXY_IDLE = 3
QUIET_CALL = 4.0


@pytest.fixture(scope="module")
def impatient_proxy(django_db_setup, django_db_blocker):
    """One worker (any database) with a short SSE heartbeat and websocket pings every second,
    behind the shipped nginx configuration with its read timeout cut to PROXY_IDLE seconds."""
    env = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": str(QUIET_CALL),
           "CIRKELLINE_SSE_HEARTBEAT_SECONDS": "0.5"}
    with django_db_blocker.unblock(), live_server(env, args=("--ping-interval", "1")) as worker, \
            nginx([worker], replace={"proxy_read_timeout 75s;": f"proxy_read_timeout {PROXY_IDLE}s;"}) as proxy:
        yield proxy


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
async def test_a_run_quiet_for_longer_than_the_proxy_timeout_streams_to_its_end(impatient_proxy, alice):
    """Guards against a silent provider call (a member working for minutes) letting the proxy's
    idle timeout cut the stream: without heartbeats nginx closes it mid-run."""
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(f"{impatient_proxy}/teams/cirkelline/runs", headers=bearer(alice),
                                   data={"message": "What is 2+2?"})
    assert response.status_code == 200
    assert response.text.count(": ping\n\n") >= QUIET_CALL / 0.5 - 2
    frames = parse_sse(response.text)
    assert frames[-1].event == "TeamRunCompleted" and frames[-1].data["content"] == "4"


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
async def test_an_idle_websocket_outlives_the_proxy_timeout(impatient_proxy, alice):
    """Guards against websockets without keepalive: the worker's pings (Daphne's --ping-interval)
    keep an idle socket open through a proxy whose idle timeout is shorter than the silence."""
    async with connect(impatient_proxy.replace("http", "ws") + "/ws/chat/",
                       subprotocols=["bearer", token_for(alice)]) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await asyncio.sleep(2 * PROXY_IDLE)  # the user reads; nobody sends anything
        await ws.send(json.dumps({"type": "watch", "session_id": None}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_WAIT))
    assert frame["type"] == "watching"


@pytest.fixture
def draining_cluster(django_db_setup, django_db_blocker):
    """Two worker processes behind nginx, one to be sent SIGTERM: (nginx URL, the two _Servers)."""
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("several workers need PostgreSQL and Redis (the CI PostgreSQL + Redis pass runs this)")
    env = {**KILL_ENV, "REDIS_URL": settings.REDIS_URL, "CIRKELLINE_DRAIN_SECONDS": "30"}
    with django_db_blocker.unblock(), live_server_process(env) as first, live_server_process(env) as second, \
            nginx([first.base_url, second.base_url]) as proxy:
        yield proxy, (first, second)


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
async def test_a_worker_drained_behind_nginx_finishes_its_run_and_loses_no_request(draining_cluster, alice):
    """Guards against a rolling restart that loses work: the live run on the stopping worker cut
    off, a new run refused without a way to retry, or started twice; the stopped worker still sent
    requests after it exited."""
    proxy, workers = draining_cluster
    by_pid = {w.proc.pid: w for w in workers}
    async with httpx.AsyncClient(timeout=60) as http:
        async with http.stream("POST", f"{proxy}/teams/cirkelline/runs", headers=bearer(alice),
                               data={"message": "Please research the history of Copenhagen"}) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            first, stopping = await first_event_and_worker(lines, by_pid)
            live = first["run_id"]
            stopping.proc.send_signal(signal.SIGTERM)

            # New runs meanwhile, as a client retries them: a 503 (the draining worker) says when
            # to retry, and the retry reaches the other worker.
            answered = []
            while len(answered) < 2:
                reply = await http.post(f"{proxy}/teams/cirkelline/runs", headers=bearer(alice),
                                        data={"message": "What is 2+2?", "stream": "false"})
                if reply.status_code == 503:
                    assert int(reply.headers["Retry-After"]) >= 1 and "restarting" in reply.json()["detail"]
                    continue  # a client would wait Retry-After; nginx's round robin moves on anyway
                assert reply.status_code == 200 and reply.json()["status"] == "COMPLETED", reply.text
                answered.append(reply.json()["run_id"])
            seen = [first] + await _sse_data(lines)
        assert seen[-1]["event"] == "TeamRunCompleted"  # the live run finished on the draining worker
        assert stopping.proc.wait(timeout=30) == 0

        # The stopped worker is skipped: requests are answered by the other one.
        after = await http.post(f"{proxy}/teams/cirkelline/runs", headers=bearer(alice),
                                data={"message": "What is 2+2?", "stream": "false"})
        assert after.status_code == 200 and after.json()["status"] == "COMPLETED", after.text

    rows = await adb(lambda: dict(RunUsage.objects.filter(user=alice).values_list("run_id", "status")))
    assert rows == {run_id: "completed" for run_id in [live, *answered, after.json()["run_id"]]}
    others = {int(w.split(":")[-2]) for w in await adb(lambda: list(RunUsage.objects.filter(
        run_id__in=[*answered, after.json()["run_id"]]).values_list("worker", flat=True)))}
    assert stopping.proc.pid not in others  # nothing new ran on the draining worker
