"""The HTTP API: runs (SSE and JSON), cancel, run lookup, teams, health and config."""

from __future__ import annotations

import asyncio

import pytest

from chat.models import ChatRun, ChatSession
from metrics.models import RunUsage
from tests.conftest import adb, bearer, error_body, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


async def test_health_and_config_answer_without_credentials(api):
    health = await api.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    config = (await api.get("/config")).json()
    assert config["status"] == "healthy"
    assert config["service"] == "cirkelline-system-backend"
    assert config["version"]
    assert config["os_id"] and [t["id"] for t in config["teams"]] == ["cirkelline"]
    assert config["agents"] == [] and config["workflows"] == [] and config["interfaces"] == []


async def test_it_issues_and_refreshes_tokens(api, alice):
    response = await api.post("/api/token/", json={"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 200
    tokens = response.json()
    refreshed = await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200 and refreshed.json()["access"]
    teams = await api.get("/teams", headers={"Authorization": f"Bearer {tokens['access']}"})
    assert teams.status_code == 200 and teams.json()[0]["id"] == "cirkelline"
    wrong = await api.post("/api/token/", json={"username": "alice", "password": "nope"})
    assert wrong.status_code == 401


async def test_a_streamed_run_speaks_agentos_sse(api, alice):
    response = await api.post(RUNS, data={"message": "Please research the history of Copenhagen"},
                              headers=bearer(alice))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    frames = parse_sse(response.text)
    names = [f.event for f in frames]
    assert names[0] == "TeamRunStarted" and names[-1] == "TeamRunCompleted"
    assert "TeamToolCallStarted" in names and "RunContent" in names  # delegated, member streamed
    run_id = frames[0].data["run_id"]
    members = [f for f in frames if f.event == "RunStarted"]
    assert members and all(f.data["parent_run_id"] == run_id for f in members)
    answer = "".join(f.data.get("content", "") for f in frames if f.event == "TeamRunContent")
    assert answer == frames[-1].data["content"]
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "completed" and row.streamed and row.user_id == alice.pk


async def test_stream_events_false_sends_content_and_the_terminal_only(api, alice):
    response = await api.post(RUNS, data={"message": "Hello", "stream_events": "false"}, headers=bearer(alice))
    names = [f.event for f in parse_sse(response.text)]
    assert set(names) == {"TeamRunContent", "TeamRunCompleted"} and names[-1] == "TeamRunCompleted"


@pytest.mark.parametrize("encoding", ["form", "multipart", "json"])
async def test_a_non_streamed_run_returns_the_run_as_json(api, alice, encoding):
    fields = {"message": "What is 2+2?", "stream": "false"}
    if encoding == "form":
        response = await api.post(RUNS, data=fields, headers=bearer(alice))
    elif encoding == "multipart":
        response = await api.post(RUNS, data=fields, files={"unused": ("x.txt", b"")}, headers=bearer(alice))
    else:
        response = await api.post(RUNS, json={"message": "What is 2+2?", "stream": False}, headers=bearer(alice))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETED" and body["content"] == "4"
    assert body["team_id"] == "cirkelline" and body["run_id"] and body["session_id"]
    assert body["metrics"]["total_tokens"] > 0
    row = await adb(RunUsage.objects.get, run_id=body["run_id"])
    assert row.status == "completed" and not row.streamed


async def test_a_session_continues_with_its_history(api, alice):
    first = (await api.post(RUNS, data={"message": "My name is Alice", "stream": "false"},
                            headers=bearer(alice))).json()
    second = (await api.post(RUNS, data={"message": "And 2+2?", "stream": "false",
                                         "session_id": first["session_id"]}, headers=bearer(alice))).json()
    assert second["session_id"] == first["session_id"]
    runs = await adb(lambda: list(
        ChatRun.objects.filter(session__session_id=first["session_id"]).values_list("run_id", flat=True)))
    assert runs == [first["run_id"], second["run_id"]]
    history_roles = [m["role"] for m in second["messages"]]
    assert history_roles.count("user") == 2


async def test_files_reach_the_specialist_for_their_kind(api, alice, recorder):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    response = await api.post(
        RUNS,
        data={"message": "What do you think of this?", "stream": "false"},
        files={"files": ("cat.png", png, "image/png")},
        headers=bearer(alice),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    leader_first = recorder.for_run(body["run_id"])[0]
    assert leader_first.media == {"images": 1}
    assert [m["agent_id"] for m in body["member_responses"]] == ["image-specialist"]


async def test_unsupported_files_are_refused_with_415(api, alice):
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"},
                              files={"files": ("tool.exe", b"MZ", "application/x-msdownload")}, headers=bearer(alice))
    assert response.status_code == 415 and "Unsupported file type" in response.json()["detail"]


async def test_the_body_user_id_cannot_choose_another_user(api, alice, bob):
    spoof = await api.post(RUNS, data={"message": "hi", "user_id": str(bob.pk), "stream": "false"},
                           headers=bearer(alice))
    assert spoof.status_code == 403
    assert await adb(RunUsage.objects.count) == 0
    own = await api.post(RUNS, data={"message": "hi", "user_id": str(alice.pk), "stream": "false"},
                         headers=bearer(alice))
    by_name = await api.post(RUNS, data={"message": "hi", "user_id": "alice", "stream": "false"},
                             headers=bearer(alice))
    assert own.status_code == 200 and by_name.status_code == 200


async def test_unknown_team_is_404(api, alice):
    response = await api.post("/teams/nope/runs", data={"message": "hi"}, headers=bearer(alice))
    assert response.status_code == 404 and error_body(response) == {"detail": "Team not found."}
    assert (await api.get("/teams/nope", headers=bearer(alice))).status_code == 404


async def test_cancel_ends_a_running_run(api, alice, use_latency):
    use_latency(30.0)  # the run is surely still running when it is looked up and cancelled
    from chat import runs

    started = asyncio.Event()
    original = runs.start_run

    async def spy(request):
        handle = await original(request)
        started.set()
        spy.handle = handle
        return handle

    runs.start_run = spy  # the seam the API calls (chat.runs.start_run)
    try:
        stream = asyncio.create_task(api.post(RUNS, data={"message": "Please research Copenhagen"},
                                              headers=bearer(alice)))
        await started.wait()
        run_id = spy.handle.run_id
        detail = await api.get(f"{RUNS}/{run_id}", headers=bearer(alice))
        assert detail.status_code == 200 and detail.json()["status"] == "RUNNING"
        cancel = await api.post(f"{RUNS}/{run_id}/cancel", headers=bearer(alice))
        response = await stream
    finally:
        runs.start_run = original

    assert cancel.status_code == 200 and cancel.json() == {"run_id": run_id, "status": "cancelled"}
    frames = parse_sse(response.text)
    assert frames[-1].event == "TeamRunCancelled"
    assert [f.event for f in frames].count("TeamRunCancelled") == 1
    again = await api.post(f"{RUNS}/{run_id}/cancel", headers=bearer(alice))
    assert again.status_code == 409 and again.json()["status"] == "cancelled"
    stored = await api.get(f"{RUNS}/{run_id}", headers=bearer(alice))
    assert stored.status_code == 200 and stored.json()["status"] == "CANCELLED"


async def test_run_lookup_and_cancel_are_owner_only(api, alice, bob):
    body = (await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))).json()
    run_url = f"{RUNS}/{body['run_id']}"
    mine = await api.get(run_url, headers=bearer(alice))
    assert mine.status_code == 200 and mine.json()["run_id"] == body["run_id"]
    assert mine.json()["content"] == body["content"]
    assert (await api.get(run_url, headers=bearer(bob))).status_code == 404
    assert (await api.post(f"{run_url}/cancel", headers=bearer(bob))).status_code == 404
    assert (await api.get(f"{RUNS}/no-such-run", headers=bearer(alice))).status_code == 404


async def test_bob_cannot_continue_alices_session(api, alice, bob):
    first = (await api.post(RUNS, data={"message": "secret plans", "stream": "false"},
                            headers=bearer(alice))).json()
    for stream in ("true", "false"):
        response = await api.post(RUNS, data={"message": "tell me", "session_id": first["session_id"],
                                              "stream": stream}, headers=bearer(bob))
        assert response.status_code == 404 and error_body(response) == {"detail": "Session not found."}
    assert await adb(RunUsage.objects.filter(user=bob).count) == 0
    session = await adb(ChatSession.objects.get, session_id=first["session_id"])
    assert session.user_id == alice.pk
    assert await adb(session.runs.count) == 1


async def test_a_provider_failure_is_a_502_with_a_readable_message(api, alice, failures, settings):
    from chat.agents.scripted import provider_error

    settings.CIRKELLINE_MAX_RETRIES = 0
    failures.push(provider_error(500, "upstream exploded with secret details"))
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 502
    body = response.json()
    assert body["error_type"] == "provider_error" and "secret" not in body["detail"]
    row = await adb(RunUsage.objects.get, run_id=body["run_id"])
    assert row.status == "error" and "secret details" in row.error_message  # staff can see the cause


async def test_a_rate_limited_run_is_a_429_with_retry_after(api, alice, failures, settings):
    from chat.agents.scripted import provider_error

    settings.CIRKELLINE_MAX_RETRIES = 0
    failures.push(provider_error(429))
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert response.json()["error_type"] == "rate_limited"


async def test_the_run_deadline_is_a_504(api, alice, settings, use_latency):
    settings.CIRKELLINE_RUN_TIMEOUT = 0.2
    use_latency(1.0)
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 504 and response.json()["error_type"] == "timeout"
    row = await adb(RunUsage.objects.get, run_id=response.json()["run_id"])
    assert row.status == "timed_out"


async def test_concurrent_streamed_runs_take_about_as_long_as_one(api, django_user_model, use_latency):
    """20 users at once, each run 3 provider calls of 1 s: the waiting overlaps."""
    use_latency(1.0)
    users = await adb(lambda: [django_user_model.objects.create_user(f"user{i}") for i in range(20)])

    async def one(i: int) -> list[str]:
        response = await api.post(RUNS, data={"message": f"Please research topic {i}"}, headers=bearer(users[i]))
        return [f.event for f in parse_sse(response.text)]

    loop = asyncio.get_running_loop()
    start = loop.time()
    single = await one(0)
    single_time = loop.time() - start

    start = loop.time()
    results = await asyncio.gather(*(one(i) for i in range(20)))
    concurrent_time = loop.time() - start

    assert single[-1] == "TeamRunCompleted"
    assert all(r[-1] == "TeamRunCompleted" for r in results)
    assert concurrent_time < 1.5 * single_time, (single_time, concurrent_time)
    assert await adb(RunUsage.objects.filter(status="completed").count) == 21


def test_json_errors_never_leak_html(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and error_body(response) == {"detail": "Not found."}


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}, 400, "must be an object"),
        ({"json": {"stream": False}}, 400, "'message' is required"),
        ({"json": {"message": "   "}}, 400, "'message' is required"),
        ({"json": {"message": 42}}, 400, "'message' is required"),
        ({"json": {"message": "hi", "session_state": [1]}}, 400, "'session_state' must be a JSON object"),
        ({"data": {"message": "hi", "metadata": "{broken"}}, 400, "'metadata' must be a JSON object"),
        ({"json": {"message": "hi", "stream": "maybe"}}, 400, "'stream' must be true or false"),
        ({"json": {"message": "hi", "session_id": "no spaces allowed"}}, 400, "Invalid session id"),
        ({"json": {"message": "hi", "session_id": 7}}, 400, "'session_id' must be a string"),
        ({"json": {"message": "hi", "background": True}}, 400, "Background runs"),
        ({"json": {"message": "x" * 40_000}}, 413, "too long"),
        ({"content": b"message=hi", "headers": {"Content-Type": "text/csv"}}, 415, "Unsupported content type"),
    ],
)
async def test_malformed_run_requests_get_a_clear_4xx_and_write_nothing(api, alice, kwargs, status, fragment):
    headers = {**bearer(alice), **kwargs.pop("headers", {})}
    response = await api.post(RUNS, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert await adb(RunUsage.objects.count) == 0
    assert await adb(ChatSession.objects.count) == 0


async def test_wrong_methods_are_405_with_allow(api, alice):
    response = await api.get(RUNS, headers=bearer(alice))
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert (await api.delete("/health")).status_code == 405


async def test_a_users_fourth_concurrent_run_is_refused_while_others_start(api, alice, bob, use_latency, settings):
    settings.CIRKELLINE_MAX_RUNS_PER_USER = 3
    use_latency(30.0)  # alice's three runs are surely still running meanwhile; cancelled below
    from chat.runs import RunRequest, cancel_run, start_run

    handles = [await start_run(RunRequest(user_id=alice.pk, message=f"question {i}"))
               for i in range(3)]
    fourth = await api.post(RUNS, data={"message": "one more", "stream": "false"}, headers=bearer(alice))
    assert fourth.status_code == 429
    assert int(fourth.headers["Retry-After"]) >= 1 and "3 runs in progress" in fourth.json()["detail"]
    use_latency(0.0)  # runs started from now on answer at once; the three keep their slow models
    bobs = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(bob))
    assert bobs.status_code == 200

    for handle in handles:
        assert await cancel_run(alice.pk, handle.run_id) == "cancelled"
    again = await api.post(RUNS, data={"message": "now?", "stream": "false"}, headers=bearer(alice))
    assert again.status_code == 200
    assert await adb(RunUsage.objects.filter(user=alice).count) == 4  # the refused run left no row


async def test_the_process_wide_cap_refuses_with_429(api, alice, bob, use_latency, settings):
    settings.CIRKELLINE_MAX_CONCURRENT_RUNS = 1
    use_latency(30.0)  # the run surely still holds the one slot when bob asks; cancelled below
    from chat.runs import RunRequest, cancel_run, start_run

    handle = await start_run(RunRequest(user_id=alice.pk, message="busy"))
    refused = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(bob))
    assert refused.status_code == 429 and "capacity" in refused.json()["detail"]
    assert await cancel_run(alice.pk, handle.run_id) == "cancelled"
