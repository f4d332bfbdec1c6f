"""A paused run over the websocket: its events end with TeamRunPaused (run_finished `paused`), and a
`continue` frame continues it on the socket (and on the user's other sockets watching the session);
another user's `continue` is an error frame."""

from __future__ import annotations

import pytest

from metrics.models import RunUsage

from ..conftest import adb

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_continue_frame_answers_the_question_and_streams_the_rest(connect, alice, bob):
    socket = await connect(alice)
    run_id, session_id = await socket.run("Please ask me about the weather")
    finished = await socket.finish(run_id)
    assert finished["status"] == "paused"
    paused = socket.events(run_id)[-1]
    assert paused["event"] == "TeamRunPaused" and paused["requirements"][0]["user_input_schema"]
    other_tab = await connect(alice)
    await other_tab.send(type="watch", session_id=session_id, ref="w")
    await other_tab.until_type("watching", ref="w")

    stranger = await connect(bob)
    await stranger.send(type="continue", run_id=run_id, ref="b",
                        requirements=[{"id": paused["requirements"][0]["id"], "values": {"focus": "rain"}}])
    refused = await stranger.until(lambda f: f.get("ref") == "b")
    assert refused["type"] == "error" and refused["status"] == 404

    await socket.send(type="continue", run_id=run_id, ref="c",
                      requirements=[{"id": paused["requirements"][0]["id"], "values": {"focus": "rain"}}])
    started = await socket.until(lambda f: f.get("ref") == "c")
    assert started["type"] == "run_started" and started["run_id"] == run_id and started["seq"] == paused["seq"]
    finished = await socket.until_type("run_finished", run_id=run_id)
    assert finished["status"] == "completed"
    continued = [e for e in socket.events(run_id) if e["seq"] > paused["seq"]]
    assert continued[0]["event"] == "TeamRunContinued" and continued[-1]["event"] == "TeamRunCompleted"
    assert "rain" in continued[-1]["content"]
    assert (await adb(RunUsage.objects.get, run_id=run_id)).status == "completed"

    # The other tab watching the session follows the continuation from where the pause left it.
    await other_tab.until_type("run_finished", run_id=run_id)
    seen = [e["seq"] for e in other_tab.events(run_id)]
    assert seen == [e["seq"] for e in continued]

    again = await socket.send(type="continue", run_id=run_id, ref="d",
                              requirements=[{"id": paused["requirements"][0]["id"], "values": {"focus": "x"}}])
    assert again is None
    conflict = await socket.until(lambda f: f.get("ref") == "d")
    assert conflict["type"] == "error" and conflict["status"] == 409 and conflict["run_status"] == "completed"
