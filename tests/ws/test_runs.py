"""Runs over the chat websocket: events, seq, the terminal event, cancel, close, several runs."""

from __future__ import annotations

import pytest

from chat.models import ChatRun, ChatSession
from chat.runs import live_run
from metrics.models import RunUsage

from ..conftest import adb, bearer, parse_sse
from .conftest import ORIGIN, TERMINAL

pytestmark = pytest.mark.django_db(transaction=True)

RESEARCH = "Please research the history of Copenhagen"


def assert_one_run(events: list[dict], terminal: str) -> None:
    """seq is the event_index: from 0, strictly increasing (it skips where text deltas were
    merged); exactly one terminal event, the last."""
    seqs = [e["seq"] for e in events]
    assert seqs[0] == 0 and all(a < b for a, b in zip(seqs, seqs[1:], strict=False))
    assert all(e["seq"] == e["event_index"] for e in events)
    assert [e["event"] for e in events if e["event"] in TERMINAL] == [terminal]
    assert events[-1]["event"] == terminal


def without_seq(event: dict) -> dict:
    return {k: v for k, v in event.items() if k != "seq"}


async def test_seq_skips_exactly_the_merged_deltas(connect, alice):
    """Guards against a seq that numbers websocket events differently from the run's event index
    (a resume after seq n would then skip or repeat events): an event's seq is the index of the
    last delta merged into it, and the deltas' text adds up to the answer."""
    socket = await connect(alice)
    run_id, _ = await socket.run(RESEARCH)
    await socket.finish(run_id)
    handle_events = socket.events(run_id)
    assert_one_run(handle_events, "TeamRunCompleted")
    answer = "".join(e.get("content", "") for e in handle_events if e["event"] == "TeamRunContent")
    assert answer == handle_events[-1]["content"]


async def test_a_run_streams_the_sse_events_with_increasing_seq_to_one_terminal_event(connect, alice, api):
    """Guards against gaps or repeats in seq, a second terminal event, the websocket sending
    other events than the SSE stream, and a run_finished that disagrees with the usage row."""
    socket = await connect(alice)
    run_id, session_id = await socket.run(RESEARCH)
    finished = await socket.finish(run_id)
    events = socket.events(run_id)
    assert_one_run(events, "TeamRunCompleted")
    assert all(e["session_id"] == session_id for e in events)
    names = [e["event"] for e in events]
    assert names[0] == "TeamRunStarted" and "TeamToolCallStarted" in names and "RunContent" in names
    members = [e for e in events if e["event"] == "RunStarted"]
    assert members and all(e["parent_run_id"] == run_id and e["run_id"] != run_id for e in members)
    answer = "".join(e.get("content", "") for e in events if e["event"] == "TeamRunContent")
    assert answer == events[-1]["content"]

    sse = parse_sse((await api.post("/teams/cirkelline/runs", data={"message": RESEARCH}, headers=bearer(alice))).text)

    def shape(names):  # text deltas may be merged differently, the rest is the same sequence
        return [n for i, n in enumerate(names) if n not in ("RunContent", "TeamRunContent") or names[i - 1] != n]

    assert shape(names) == shape([f.event for f in sse])
    assert set(without_seq(events[0])) == set(sse[0].data)

    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert (row.status, row.streamed, row.session_id) == ("completed", True, session_id)
    assert finished["status"] == "completed" and finished["saved"] is True and finished["seq"] == events[-1]["seq"]
    assert finished["tokens"]["total_tokens"] == row.total_tokens > 0
    assert await adb(ChatSession.objects.filter(session_id=session_id, user=alice).exists)


async def test_cancel_mid_run_ends_it_cancelled_with_a_cancelled_usage_row(connect, alice, use_latency):
    """Guards against a cancel frame waiting behind the streaming run (frames handled one at a
    time), and against a cancelled run left without its terminal event or usage row."""
    use_latency(1.0)
    socket = await connect(alice)
    run_id, _ = await socket.run(RESEARCH)
    await socket.until(lambda f: f["type"] == "events" and f["run_id"] == run_id)
    await socket.send(type="cancel", run_id=run_id, ref="c1")
    cancelled = await socket.until_type("cancelled")
    assert cancelled == {"type": "cancelled", "run_id": run_id, "status": "cancelled", "ref": "c1"}
    finished = await socket.finish(run_id)
    assert finished["status"] == "cancelled"
    assert_one_run(socket.events(run_id), "TeamRunCancelled")
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "cancelled"

    await socket.send(type="cancel", run_id=run_id, ref="c2")  # again: it has ended
    again = await socket.until_type("error")
    assert again["status"] == 409 and again["run_status"] == "cancelled" and again["ref"] == "c2"


async def test_another_users_session_is_refused_without_saying_it_exists(connect, alice, bob):
    """Guards against bob continuing, watching or cancelling alice's chat over the websocket."""
    alices = await connect(alice)
    run_id, session_id = await alices.run("What is 2+2?")
    await alices.finish(run_id)

    bobs = await connect(bob)
    await bobs.send(type="run", message="and 3+3?", session_id=session_id, ref="b1")
    refused = await bobs.next()
    assert refused == {"type": "error", "status": 404, "detail": "Session not found.", "ref": "b1"}
    await bobs.send(type="watch", session_id=session_id, ref="b2")
    watch = await bobs.next()
    assert watch["status"] == 404 and watch["detail"] == "Session not found." and watch["ref"] == "b2"
    await bobs.send(type="cancel", run_id=run_id, ref="b3")
    cancel = await bobs.next()
    assert cancel["status"] == 404 and cancel["detail"] == "Run not found."
    assert await adb(RunUsage.objects.filter(user=bob).count) == 0
    assert await adb(ChatRun.objects.filter(session__session_id=session_id).count) == 1


async def test_closing_the_socket_leaves_its_run_going_to_be_stored_and_resumed(connect, alice, use_latency):
    """Guards against a run stopped (and its answer lost) because its tab closed or its connection
    dropped: the run goes on to its end, is stored, and another socket resumes it after the seq
    the first one had, without a gap or a repeat."""
    use_latency(0.4)
    socket = await connect(alice)
    run_id, session_id = await socket.run(RESEARCH)
    first = await socket.until(lambda f: f["type"] == "events" and f["run_id"] == run_id)
    seen = first["events"][-1]["seq"]
    handle = live_run(run_id)
    assert handle is not None
    await socket.comm.disconnect()
    again = await connect(alice)
    await again.send(type="watch", session_id=session_id, after={run_id: seen})
    finished = await again.finish(run_id)
    assert finished["status"] == "completed"
    result = await handle.wait()
    assert result.status == "completed"
    rest = again.events(run_id)
    assert rest[0]["seq"] > seen and rest[-1]["event"] == "TeamRunCompleted"
    answer = "".join(e.get("content", "") for e in first["events"] + rest if e["event"] == "TeamRunContent")
    assert answer == rest[-1]["content"]
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "completed"
    assert await adb(ChatRun.objects.filter(run_id=run_id, status="COMPLETED").exists)


async def test_closing_the_socket_cancels_its_runs_when_so_configured(connect, alice, use_latency, settings):
    """Guards against CIRKELLINE_ON_DISCONNECT=cancel being ignored: a closed socket's runs stop
    (cancelled, usage recorded), as before runs outlived their clients."""
    settings.CIRKELLINE_ON_DISCONNECT = "cancel"
    use_latency(1.0)
    socket = await connect(alice)
    run_id, _ = await socket.run(RESEARCH)
    handle = live_run(run_id)
    assert handle is not None
    await socket.comm.disconnect()
    result = await handle.wait()
    assert result.status == "cancelled"
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "cancelled"


async def test_two_runs_on_one_socket_stream_side_by_side(connect, alice, use_latency):
    """Guards against a socket serving its runs one after the other, or mixing their seq."""
    use_latency(0.3)
    socket = await connect(alice)
    first, first_session = await socket.run(RESEARCH)
    second, second_session = await socket.run("Please research the history of Aarhus")
    await socket.finish(first)
    await socket.finish(second)
    assert first_session != second_session
    assert_one_run(socket.events(first), "TeamRunCompleted")
    assert_one_run(socket.events(second), "TeamRunCompleted")
    order = [f["run_id"] for f in socket.received if f["type"] == "events"]
    # interleaved: the second run streamed before the first one's last frame
    assert order.index(second) < len(order) - 1 - order[::-1].index(first)
    rows = await adb(lambda: dict(RunUsage.objects.values_list("run_id", "status")))
    assert rows == {first: "completed", second: "completed"}


async def test_a_run_continues_its_session(connect, alice):
    """Guards against session_id in a run frame being ignored (every message a new chat)."""
    socket = await connect(alice)
    run_id, session_id = await socket.run("What is 2+2?")
    await socket.finish(run_id)
    again, same = await socket.run("And what is 3*3?", session_id=session_id)
    await socket.finish(again)
    assert same == session_id
    assert socket.events(again)[-1]["content"] == "9"
    assert await adb(ChatRun.objects.filter(session__session_id=session_id, parent_run_id=None).count) == 2


@pytest.mark.parametrize(
    ("frame", "status", "detail"),
    [
        ({"message": ""}, 400, "'message' is required"),
        ({"message": "x" * 40_000}, 413, "'message' is too long"),
        ({"message": "hi", "session_state": [1]}, 400, "'session_state' must be a JSON object"),
        ({"message": "hi", "session_id": "../../etc"}, 400, "Invalid session id"),
        ({"message": "hi", "deep_research": "maybe"}, 400, "'deep_research' must be true or false"),
        ({"message": "hi", "user_id": "bob"}, 403, "'user_id' must be your own"),
        ({"message": "hi", "files": ["../x"]}, 400, "'files' must be a list of upload ids"),
        ({"message": "hi", "files": ["0" * 32]}, 404, "An attached file was not found"),
        ({"message": "hi", "team_id": "nope"}, 404, "Team not found."),
    ],
)
async def test_run_frames_get_the_http_apis_checks(connect, alice, bob, frame, status, detail):
    """Guards against the websocket accepting what the HTTP API refuses (one set of checks)."""
    socket = await connect(alice)
    await socket.send(type="run", ref="x", **frame)
    error = await socket.next()
    assert error["type"] == "error" and error["status"] == status and error["ref"] == "x"
    assert error["detail"].startswith(detail)
    assert await adb(RunUsage.objects.count) == 0


@pytest.mark.parametrize(
    ("text", "status"),
    [("not json", 400), ('{"type": "run", "message": NaN}', 400), ('{"type": "run", "message": "a\\u0000"}', 400),
     ("[1, 2]", 400), ('{"type": "dance"}', 400)],
)
async def test_malformed_frames_get_an_error_frame_and_the_socket_stays_open(connect, alice, text, status):
    """Guards against a bad frame crashing the consumer (and the runs it carries)."""
    socket = await connect(alice)
    await socket.comm.send_to(text_data=text)
    error = await socket.next()
    assert error["type"] == "error" and error["status"] == status
    run_id, _ = await socket.run("What is 2+2?")
    assert (await socket.finish(run_id))["status"] == "completed"


async def test_the_per_user_limit_answers_429_with_retry_after(connect, alice, settings, use_latency):
    """Guards against admission control being skipped on the websocket."""
    settings.CIRKELLINE_MAX_RUNS_PER_USER = 1
    use_latency(1.0)
    socket = await connect(alice)
    run_id, _ = await socket.run(RESEARCH)
    await socket.send(type="run", message="another", ref="two")
    refused = await socket.until(lambda f: f.get("ref") == "two")
    assert refused["status"] == 429 and refused["retry_after"] > 0
    await socket.send(type="cancel", run_id=run_id)
    assert (await socket.finish(run_id))["status"] == "cancelled"


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_an_uploaded_png_reaches_the_image_specialist(connect, alice, bob, api, recorder):
    """Guards against attachments being dropped between the upload and the run (the old system's
    UI sent files its endpoint never read), and against using another user's upload."""
    upload = await api.post("/uploads", files={"files": ("cat.png", PNG, "image/png")}, headers=bearer(alice))
    assert upload.status_code == 201, upload.text
    [meta] = upload.json()["files"]
    assert (meta["name"], meta["kind"], meta["mime_type"], meta["size"]) == ("cat.png", "image", "image/png", len(PNG))

    bobs = await connect(bob)
    await bobs.send(type="run", message="mine now", files=[meta["id"]], ref="steal")
    assert (await bobs.next())["status"] == 404

    socket = await connect(alice)
    await socket.send(type="run", message="What do you think of this?", files=[meta["id"]], ref="png")
    started = await socket.until(lambda f: f.get("ref") == "png")
    assert started["files"] == [{"name": "cat.png", "kind": "image"}]
    await socket.finish(started["run_id"])
    calls = recorder.for_run(started["run_id"])
    assert calls[0].media == {"images": 1}
    assert [c.model_label for c in calls] == ["leader", "image-specialist", "leader"]
    assert calls[1].media == {"images": 1}  # the specialist itself was given the picture
    members = [e for e in socket.events(started["run_id"]) if e["event"] == "RunStarted"]
    assert [m["agent_id"] for m in members] == ["image-specialist"]

    await socket.send(type="run", message="again", files=[meta["id"]], ref="twice")  # used once
    again = await socket.until(lambda f: f.get("ref") == "twice")
    assert again["status"] == 404 and "expired or was already sent" in again["detail"]


@pytest.mark.parametrize(
    ("files", "status", "detail"),
    [
        ({"files": ("tool.exe", b"MZ", "application/x-msdownload")}, 415, "Unsupported file type"),
        ({"files": ("big.png", b"\x89PNG" + b"\x00" * 2048, "image/png")}, 413, "is too large: the limit is 1024"),
        ({}, 400, "Send one or more files"),
    ],
)
async def test_uploads_are_checked_like_run_files(api, alice, settings, files, status, detail):
    """Guards against the upload route accepting what the run API refuses (types, sizes)."""
    settings.CIRKELLINE_MAX_FILE_BYTES = 1024
    response = await api.post("/uploads", files=files or None, headers=bearer(alice))
    assert response.status_code == status and detail in response.json()["detail"]


async def test_uploads_need_a_login(api):
    """Guards against anonymous uploads filling the disk."""
    response = await api.post("/uploads", files={"files": ("cat.png", PNG, "image/png")})
    assert response.status_code == 401


async def test_a_socket_is_counted_while_open_and_its_runs_carry_its_request_id(connect, alice):
    """Guards against websocket runs that cannot be tied to their connection's log lines, and an
    open-connections gauge that does not move (or never comes back down)."""
    from chat.observability import prom
    from tests.observability.conftest import parse_metrics, total

    def gauge() -> float:
        return total(parse_metrics(prom.render()[0].decode()), "cirkelline_websocket_connections")

    before = gauge()
    socket = await connect(alice, headers=[ORIGIN, (b"x-request-id", b"ws-conn-7")])
    assert gauge() == before + 1
    run_id, _ = await socket.run(RESEARCH)
    await socket.finish(run_id)
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.request_id == "ws-conn-7"
    await socket.comm.disconnect()
    assert gauge() == before

    bad = await connect(alice, headers=[ORIGIN, (b"x-request-id", b"x" * 10_000)])
    run_id, _ = await bad.run(RESEARCH)
    await bad.finish(run_id)
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.request_id and len(row.request_id) <= 64 and "x" * 65 not in row.request_id
