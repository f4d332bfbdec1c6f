"""A run's events reach every socket of its owner watching the session, and no one else's."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer

from chat.ws import fanout

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


async def test_one_tab_sends_nothing_through_the_channel_layer(connect, alice, monkeypatch):
    """Guards against the cost of publishing every batch of every run (through Redis, with
    REDIS_URL) when nobody else can be watching: a new chat, or a chat watched by this tab alone."""
    layer = get_channel_layer()
    real_group_send = layer.group_send
    published: list[str] = []

    async def group_send(group, message):
        if message["type"] == "run.frame":
            published.append(group)
        await real_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    tab = await connect(alice)
    session_id = await a_session_of(tab)  # a new chat: its id is known to this tab only
    assert published == []
    again, _ = await tab.run("What is 3+3?", session_id=session_id)  # not watched here: others may be
    await tab.finish(again)
    assert published and set(published) == {fanout.group_name(alice.pk, session_id)}
    published.clear()
    await watching(tab, session_id, 1)  # watched, and alone
    run_id, _ = await tab.run(RESEARCH, session_id=session_id)
    await tab.finish(run_id)
    assert published == []


async def test_a_late_tab_is_told_of_the_run_in_progress(connect, alice, use_latency):
    """Guards against a tab opened mid-answer showing nothing of the live run."""
    tab1 = await connect(alice)
    session_id = await a_session_of(tab1)
    await watching(tab1, session_id, 1)
    use_latency(0.5)
    run_id, _ = await tab1.run(RESEARCH, session_id=session_id)
    tab2 = await connect(alice)
    await watching(tab2, session_id, 2)
    joined = await tab2.until_type("run_started", run_id=run_id)
    assert joined["joined"] is True and joined["message"] == RESEARCH
    finished = await tab2.finish(run_id)
    assert finished["status"] == "completed"
    await tab1.finish(run_id)
    late = tab2.events(run_id)
    assert late and late == tab1.events(run_id)[-len(late):]


def test_group_names_are_per_user_and_valid():
    """Guards against two users' sockets sharing a group for one session id."""
    a, b = fanout.group_name(1, "s:1"), fanout.group_name(2, "s:1")
    assert a != b and len(a) < 100 and all(c.isalnum() or c in "._-" for c in a)
