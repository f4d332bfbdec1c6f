"""A session's new name reaches every open socket of its user, and nobody else's (chat.ws.notices)."""

from __future__ import annotations

import pytest

from chat.runs import naming

from ..conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = "Please research the history of Copenhagen in detail"


async def test_the_models_title_reaches_every_socket_of_the_user_and_no_other(connect, alice, bob, settings):
    settings.CIRKELLINE_AUTO_NAME_SESSIONS = True
    mine, other_tab, bobs = await connect(alice), await connect(alice, via="header"), await connect(bob)
    run_id, session_id = await mine.run(MESSAGE)
    await mine.finish(run_id)
    frame = await mine.until_type("session_renamed")
    assert frame == {"type": "session_renamed", "session_id": session_id,
                     "session_name": "Research the history of Copenhagen", "named_by": "model"}
    assert await other_tab.until_type("session_renamed") == frame  # a tab on no session at all hears it too
    await naming.settle_namings(10.0)
    assert await bobs.nothing_more()


async def test_a_rename_through_the_api_reaches_the_users_other_pages(connect, api, alice, bob):
    socket, bobs = await connect(alice), await connect(bob)
    run_id, session_id = await socket.run(MESSAGE)
    await socket.finish(run_id)
    response = await api.post(f"/sessions/{session_id}/rename", json={"session_name": "Copenhagen <b>trip</b>"},
                              headers=bearer(alice))
    assert response.status_code == 200
    assert await socket.until_type("session_renamed") == {
        "type": "session_renamed", "session_id": session_id, "session_name": "Copenhagen <b>trip</b>",
        "named_by": "user"}
    # bob renaming alice's session is a 404 and tells nobody anything
    response = await api.post(f"/sessions/{session_id}/rename", json={"session_name": "Bob's"}, headers=bearer(bob))
    assert response.status_code == 404
    assert await socket.nothing_more() and await bobs.nothing_more()
