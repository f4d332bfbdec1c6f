"""GET /sessions/{id}/runs a page at a time: `limit` and `before` (a team run id), latest first;
without them, AgentOS's answer (every run) as before."""

from __future__ import annotations

import pytest

from chat.errors import BadRequest
from chat.models import ChatRun, ChatSession
from tests.conftest import adb, bearer, error_body

pytestmark = pytest.mark.django_db(transaction=True)


def make_session(user, session_id: str, team_runs: int, *, members_every: int = 2) -> list[str]:
    """A session of `team_runs` ended team runs t1..tN (every `members_every`-th one delegated to a
    member, stored right after it); the ids of the team runs, oldest first."""
    session = ChatSession.objects.create(session_id=session_id, user=user, team_id="cirkelline",
                                         session_name=session_id)
    ids = []
    for n in range(1, team_runs + 1):
        run_id = f"{session_id}-t{n}"
        ids.append(run_id)
        ChatRun.objects.create(run_id=run_id, session=session, user=user, run_type="team", component_id="cirkelline",
                               status="COMPLETED", payload={"run_id": run_id, "team_id": "cirkelline",
                                                            "status": "COMPLETED", "content": f"answer {n}",
                                                            "input": {"input_content": f"question {n}"}})
        if n % members_every == 0:
            member = f"{run_id}-m"
            ChatRun.objects.create(run_id=member, session=session, user=user, run_type="agent", parent_run_id=run_id,
                                   component_id="research-specialist", status="COMPLETED",
                                   payload={"run_id": member, "agent_id": "research-specialist",
                                            "parent_run_id": run_id, "status": "COMPLETED", "content": "found"})
    return ids


def ids_of(response) -> list[str]:
    return [run["run_id"] for run in response.json()]


async def test_pages_walk_back_from_the_latest_runs_with_their_member_runs(api, alice):
    await adb(make_session, alice, "long", 7)
    url = "/sessions/long/runs"

    first = await api.get(f"{url}?limit=3", headers=bearer(alice))
    assert first.status_code == 200
    # The 3 latest team runs, each with its member run, in stored order (as the unpaged answer).
    assert ids_of(first) == ["long-t5", "long-t6", "long-t6-m", "long-t7"]
    assert first.headers["X-Next-Before"] == "long-t5"
    assert first.headers["Link"] == '</sessions/long/runs?limit=3&before=long-t5>; rel="next"'

    second = await api.get(f"{url}?limit=3&before=long-t5", headers=bearer(alice))
    assert ids_of(second) == ["long-t2", "long-t2-m", "long-t3", "long-t4", "long-t4-m"]
    assert second.headers["X-Next-Before"] == "long-t2"

    last = await api.get(f"{url}?limit=3&before=long-t2", headers=bearer(alice))
    assert ids_of(last) == ["long-t1"]
    assert "X-Next-Before" not in last.headers and "Link" not in last.headers

    # Together, the pages hold exactly the runs of the unpaged answer.
    everything = await api.get(url, headers=bearer(alice))
    assert sorted(ids_of(first) + ids_of(second) + ids_of(last)) == sorted(ids_of(everything))
    assert len(ids_of(everything)) == 7 + 3


async def test_a_page_of_exactly_the_remaining_runs_has_no_cursor(api, alice):
    await adb(make_session, alice, "even", 4)
    page = await api.get("/sessions/even/runs?limit=4", headers=bearer(alice))
    assert [r for r in ids_of(page) if not r.endswith("-m")] == ["even-t1", "even-t2", "even-t3", "even-t4"]
    assert "X-Next-Before" not in page.headers and "Link" not in page.headers


async def test_before_alone_pages_with_the_default_size(api, alice):
    ids = await adb(make_session, alice, "many", 25, members_every=100)
    page = await api.get(f"/sessions/many/runs?before={ids[-1]}", headers=bearer(alice))
    assert ids_of(page) == ids[4:24]  # the 20 team runs before the latest
    assert page.headers["X-Next-Before"] == ids[4]


async def test_the_unpaged_answer_is_unchanged_and_carries_no_cursor(api, alice):
    await adb(make_session, alice, "plain", 30, members_every=100)
    response = await api.get("/sessions/plain/runs", headers=bearer(alice))
    assert len(response.json()) == 30
    assert "X-Next-Before" not in response.headers and "Link" not in response.headers


async def test_runs_in_progress_are_not_on_a_page(api, alice):
    ids = await adb(make_session, alice, "live", 3)

    def start_run():
        session = ChatSession.objects.get(session_id="live")
        ChatRun.objects.create(run_id="live-t4", session=session, user=alice, run_type="team", status="RUNNING",
                               payload={"run_id": "live-t4", "team_id": "cirkelline", "status": "RUNNING"})

    await adb(start_run)
    page = await api.get("/sessions/live/runs?limit=2", headers=bearer(alice))
    assert ids_of(page) == ["live-t2", "live-t2-m", "live-t3"]
    # A running run is a valid cursor all the same (a page knows it from its live stream).
    before_live = await api.get("/sessions/live/runs?limit=5&before=live-t4", headers=bearer(alice))
    assert [r for r in ids_of(before_live) if not r.endswith("-m")] == ids


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=two", "limit=", "limit=%205", "before=",
                                   "before=has%20space", "before=long-t2-m", "before=other-t1", "before=bobs-t1",
                                   "before=nope"])
async def test_bad_paging_parameters_are_400_with_a_sentence(api, alice, bob, query):
    await adb(make_session, alice, "long", 3)
    await adb(make_session, alice, "other", 1)
    await adb(make_session, bob, "bobs", 1)
    response = await api.get(f"/sessions/long/runs?{query}", headers=bearer(alice))
    assert response.status_code == 400
    detail = error_body(response)["detail"]
    assert detail.endswith(".") and ("'limit'" in detail or "'before'" in detail)


async def test_another_users_session_is_404_with_paging_too(api, alice, bob):
    await adb(make_session, alice, "long", 3)
    response = await api.get("/sessions/long/runs?limit=2", headers=bearer(bob))
    assert response.status_code == 404 and error_body(response) == {"detail": "Session not found."}
    # and bob's own cursor does not open it either
    await adb(make_session, bob, "bobs", 2)
    response = await api.get("/sessions/long/runs?before=bobs-t2", headers=bearer(bob))
    assert response.status_code == 404


@pytest.mark.parametrize("before", [None, "q-t30"])
@pytest.mark.parametrize("limit", [1, 10, 100])
def test_a_page_is_one_query_whatever_its_size(alice, bob, django_assert_num_queries, limit, before):
    make_session(alice, "q", 40)
    make_session(bob, "b", 40)  # another user's runs in the table, never on alice's page
    with django_assert_num_queries(1) as queries:
        payloads, cursor = ChatSession.objects.run_page(alice.pk, "q", limit=limit, before=before)
    top = [p["run_id"] for p in payloads if "parent_run_id" not in p]
    expected = [f"q-t{n}" for n in range(1, 30 if before else 41)][-limit:]
    assert top == expected and all(run_id.startswith("q-") for p in payloads for run_id in [p["run_id"]])
    assert cursor == (expected[0] if expected[0] != "q-t1" else None)
    # The page is cut in the database (LIMIT), not by loading the whole session.
    assert "LIMIT" in queries.captured_queries[0]["sql"].upper()


def test_an_empty_page_tells_a_bad_cursor_and_a_foreign_session_apart_with_one_more_query(
        alice, bob, django_assert_num_queries):
    make_session(alice, "mine", 2)
    make_session(bob, "theirs", 2)
    with django_assert_num_queries(2), pytest.raises(BadRequest):
        ChatSession.objects.run_page(alice.pk, "mine", limit=5, before="theirs-t1")
    with django_assert_num_queries(2):
        assert ChatSession.objects.run_page(bob.pk, "mine", limit=5) is None
    with django_assert_num_queries(2):  # before the oldest run: an empty page, not an error
        assert ChatSession.objects.run_page(alice.pk, "mine", limit=5, before="mine-t1") == ([], None)
