"""A run's events reach every socket of its owner watching the session, and no one else's: whoever
started it (a socket, the HTTP API), and from its start even when the socket came late."""

from __future__ import annotations

import pytest
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from chat.ws import fanout

from ..conftest import bearer, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

RESEARCH = "Please research the history of Copenhagen"


async def watching(socket, session_id: str, sockets: int) -> None:
    """Watch `session_id` and wait until this socket knows `sockets` sockets are on it."""
    await socket.send(type="watch", session_id=session_id, ref="w")
    assert (await socket.until_type("watching", session_id=session_id))["ref"] == "w"
    await socket.until_type("presence", session_id=session_id, sockets=sockets)


async def a_session_of(socket) -> str:
    run_id, session_id = await socket.run("What is 2+2?")
    await socket.finish(run_id)
    return session_id


async def test_a_second_socket_of_the_owner_sees_the_run_and_another_users_socket_does_not(connect, alice, bob):
    """Guards against a second tab not seeing a live answer, against the starting socket getting
    its own frames twice, and against anyone but the owner joining the session's group."""
    tab1 = await connect(alice)
    session_id = await a_session_of(tab1)
    tab2 = await connect(alice, via="header")
    bobs = await connect(bob)
    await watching(tab1, session_id, 1)
    await watching(tab2, session_id, 2)
    await tab1.until_type("presence", session_id=session_id, sockets=2)
    await bobs.send(type="watch", session_id=session_id)
    assert (await bobs.next())["status"] == 404

    run_id, _ = await tab1.run(RESEARCH, session_id=session_id)
    await tab1.finish(run_id)
    seen = await tab2.until_type("run_started", run_id=run_id)
    assert seen["message"] == RESEARCH and "ref" not in seen
    await tab2.finish(run_id)
    assert tab2.events(run_id) == tab1.events(run_id)  # the same frames, same seq
    assert tab1.events(run_id)[-1]["event"] == "TeamRunCompleted"
    starts = [f for f in tab1.received if f["type"] == "run_started" and f["run_id"] == run_id]
    assert len(starts) == 1 and await tab1.nothing_more()  # no echo of its own frames
    assert await bobs.nothing_more()


async def test_a_socket_on_another_session_gets_nothing_and_leaving_stops_the_copies(connect, alice):
    """Guards against frames leaking to the user's sockets on other sessions, and against a
    socket still receiving a session after it moved to another."""
    tab1 = await connect(alice)
    first = await a_session_of(tab1)
    second = await a_session_of(tab1)
    tab2 = await connect(alice)
    await watching(tab1, first, 1)
    await watching(tab2, second, 1)
    run_id, _ = await tab1.run("What is 5*5?", session_id=first)
    await tab1.finish(run_id)
    assert await tab2.nothing_more()

    await watching(tab2, first, 2)
    await tab1.until_type("presence", session_id=first, sockets=2)
    await watching(tab2, second, 1)  # moves away: tab1 is told, and stops copying
    await tab1.until_type("presence", session_id=first, sockets=1)
    run_id, _ = await tab1.run("What is 6*6?", session_id=first)
    await tab1.finish(run_id)
    assert await tab2.nothing_more()


async def test_no_event_crosses_the_channel_layer_and_a_run_is_announced_once(connect, alice, monkeypatch):
    """Guards against the cost of publishing every batch of every run through the channel layer
    (Redis, with REDIS_URL): watchers read the run's event log; the layer carries presence and one
    `run.live` notice per run in an existing session (none for a new chat: nobody knows its id)."""
    layer = get_channel_layer()
    real_group_send = layer.group_send
    sent: list[tuple[str, str]] = []

    async def group_send(group, message):
        sent.append((message["type"], group))
        await real_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    tab = await connect(alice)
    session_id = await a_session_of(tab)  # a new chat
    assert sent == []
    await watching(tab, session_id, 1)
    run_id, _ = await tab.run(RESEARCH, session_id=session_id)
    await tab.finish(run_id)
    group = fanout.group_name(alice.pk, session_id)
    assert sent == [("presence.join", group), ("run.live", group)]
    assert len([f for f in tab.received if f["type"] == "run_started" and f["run_id"] == run_id]) == 1


async def test_a_late_tab_gets_the_run_in_progress_from_its_start(connect, alice, use_latency):
    """Guards against a tab opened mid-answer showing only the rest of the live run (or nothing)."""
    tab1 = await connect(alice)
    session_id = await a_session_of(tab1)
    await watching(tab1, session_id, 1)
    use_latency(0.5)
    run_id, _ = await tab1.run(RESEARCH, session_id=session_id)
    await tab1.until(lambda f: f["type"] == "events" and f["run_id"] == run_id)  # it is under way
    tab2 = await connect(alice)
    await watching(tab2, session_id, 2)
    joined = await tab2.until_type("run_started", run_id=run_id)
    assert joined["joined"] is True and joined["message"] == RESEARCH and joined["seq"] == -1
    finished = await tab2.finish(run_id)
    assert finished["status"] == "completed"
    await tab1.finish(run_id)
    assert tab2.events(run_id) == tab1.events(run_id)  # the whole run, the same frames and seq


async def test_a_run_started_over_http_reaches_the_watching_socket(connect, alice, api, use_latency):
    """Guards against watchers seeing only runs that websockets started."""
    tab = await connect(alice)
    session_id = await a_session_of(tab)
    await watching(tab, session_id, 1)
    use_latency(0.1)
    response = await api.post("/teams/cirkelline/runs", headers=bearer(alice),
                              data={"message": RESEARCH, "session_id": session_id})
    sse = parse_sse(response.text)
    run_id = sse[0].data["run_id"]
    seen = await tab.until_type("run_started", run_id=run_id)
    assert seen["joined"] is True and seen["message"] == RESEARCH
    assert (await tab.finish(run_id))["status"] == "completed"
    assert [e["seq"] for e in tab.events(run_id)] == [f.data["event_index"] for f in sse]
    assert [e["event"] for e in tab.events(run_id)] == [f.event for f in sse]


async def test_watch_after_a_seq_replays_only_what_follows(connect, alice, use_latency):
    """Guards against a reconnecting page getting events twice (a duplicated word) or missing some."""
    tab1 = await connect(alice)
    session_id = await a_session_of(tab1)
    use_latency(0.3)
    run_id, _ = await tab1.run(RESEARCH, session_id=session_id)
    first = await tab1.until(lambda f: f["type"] == "events" and f["run_id"] == run_id)
    seen = first["events"][-1]["seq"]
    tab2 = await connect(alice)  # the same page after a reconnect
    await tab2.send(type="watch", session_id=session_id, after={run_id: seen})
    watching_frame = await tab2.until_type("watching", session_id=session_id)
    assert watching_frame["runs"] == [run_id]
    assert (await tab2.until_type("run_started", run_id=run_id))["seq"] == seen
    await tab2.finish(run_id)
    await tab1.finish(run_id)
    rest = tab2.events(run_id)
    assert rest == [e for e in tab1.events(run_id) if e["seq"] > seen]
    assert rest[0]["seq"] > seen and rest[-1]["event"] == "TeamRunCompleted"


async def test_watch_after_names_a_run_that_ended_meanwhile(connect, alice):
    """Guards against a page that reconnects after its run ended waiting for ever: the kept log
    replays the rest of the run and its run_finished."""
    tab1 = await connect(alice)
    session_id = await a_session_of(tab1)
    run_id, _ = await tab1.run(RESEARCH, session_id=session_id)
    await tab1.finish(run_id)
    events = tab1.events(run_id)
    middle = events[len(events) // 2]["seq"]
    tab2 = await connect(alice)
    await tab2.send(type="watch", session_id=session_id, after={run_id: middle})
    assert (await tab2.until_type("watching", session_id=session_id))["runs"] == [run_id]
    assert (await tab2.finish(run_id))["status"] == "completed"
    assert tab2.events(run_id) == [e for e in events if e["seq"] > middle]


async def test_watch_after_refuses_another_users_run(connect, alice, bob):
    """Guards against a socket replaying someone else's run by naming its id."""
    tab = await connect(alice)
    session_id = await a_session_of(tab)
    run_id, _ = await tab.run(RESEARCH, session_id=session_id)
    await tab.finish(run_id)
    bobs = await connect(bob)
    bobs_session = await a_session_of(bobs)
    await bobs.send(type="watch", session_id=bobs_session, after={run_id: -1})
    assert (await bobs.until_type("watching", session_id=bobs_session))["runs"] == []
    await bobs.send(type="watch", session_id=session_id, after={run_id: -1})
    assert (await bobs.until_type("error"))["status"] == 404
    assert await bobs.nothing_more()


def test_group_names_are_per_user_and_valid():
    """Guards against two users' sockets sharing a group for one session id."""
    a, b = fanout.group_name(1, "s:1"), fanout.group_name(2, "s:1")
    assert a != b and len(a) < 100 and all(c.isalnum() or c in "._-" for c in a)


async def test_a_greeting_that_finds_the_joiners_channel_full_is_dropped_and_the_greeter_stays_open(caplog):
    """Guards against ChannelFull from a presence answer ending the answering socket's consumer
    (a 1011 close): the joining socket's count of windows is one short, nothing else."""

    class FullLayer:
        def __init__(self):
            self.sent = []

        async def send(self, channel, message):
            self.sent.append((channel, message["type"]))
            raise ChannelFull()

    layer = FullLayer()
    greeter = fanout.Fanout(layer, "specific.x!greeter")
    greeter.group = "chat.u1.abc"
    await greeter.greet("specific.x!joiner")
    assert layer.sent == [("specific.x!joiner", "presence.here")]
    assert "not greeted" in caplog.text
