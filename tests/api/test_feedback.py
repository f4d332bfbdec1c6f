"""Feedback on answers: POST/GET/DELETE /runs/{run_id}/feedback, GET /sessions/{id}/feedback; the
owner's runs only, one per run, changeable (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from chat.models import ChatRun, ChatSession
from chat.runs import RunRequest, start_run
from metrics.models import Feedback, RunUsage
from tests.conftest import adb, bearer, error_body

pytestmark = pytest.mark.django_db(transaction=True)

RESEARCH = "Please research the history of Copenhagen"


async def answer(api, user, message="What is 2+2?", **fields) -> dict:
    response = await api.post("/teams/cirkelline/runs", data={"message": message, "stream": "false", **fields},
                              headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()


def feedback_url(run_id: str) -> str:
    return f"/runs/{run_id}/feedback"


def stored(run_id: str) -> Feedback | None:
    return Feedback.objects.filter(run_id=run_id).first()


async def test_alice_rates_an_answer_changes_her_mind_and_takes_it_back(api, alice):
    run = await answer(api, alice)
    url = feedback_url(run["run_id"])
    given = await api.post(url, json={"rating": "down", "comment": "  Too short.  "}, headers=bearer(alice))
    assert given.status_code == 201
    body = given.json()
    assert {k: body[k] for k in ("run_id", "session_id", "rating", "comment")} == {
        "run_id": run["run_id"], "session_id": run["session_id"], "rating": "down", "comment": "Too short."}
    assert set(body) == {"run_id", "session_id", "rating", "comment", "created_at", "updated_at"}  # no staff status
    row = await adb(stored, run["run_id"])
    assert (row.user_id, row.rating, row.status) == (alice.pk, "down", "unread")

    await adb(Feedback.objects.filter(pk=row.pk).update, status="done")  # staff dealt with it ...
    changed = await api.post(url, json={"rating": "up"}, headers=bearer(alice))
    assert changed.status_code == 200
    assert (changed.json()["rating"], changed.json()["comment"]) == ("up", "")
    assert changed.json()["created_at"] == body["created_at"] and changed.json()["updated_at"] > body["updated_at"]
    row = await adb(stored, run["run_id"])
    assert (row.rating, row.comment, row.status) == ("up", "", "unread")  # ... and it is news again
    assert await adb(Feedback.objects.count) == 1  # one per run

    assert (await api.get(url, headers=bearer(alice))).json() == changed.json()
    listed = await api.get(f"/sessions/{run['session_id']}/feedback", headers=bearer(alice))
    assert listed.status_code == 200 and listed.json() == {"data": [changed.json()]}

    assert (await api.delete(url, headers=bearer(alice))).status_code == 204
    assert await adb(stored, run["run_id"]) is None
    missing = await api.get(url, headers=bearer(alice))
    assert missing.status_code == 404 and error_body(missing) == {"detail": "No feedback on this run."}
    assert (await api.get(f"/sessions/{run['session_id']}/feedback", headers=bearer(alice))).json() == {"data": []}
    assert (await api.delete(url, headers=bearer(alice))).status_code == 204  # idempotent


async def test_a_form_body_works_too(api, alice):
    run = await answer(api, alice)
    response = await api.post(feedback_url(run["run_id"]), data={"rating": "up", "comment": "Spot on"},
                              headers=bearer(alice))
    assert response.status_code == 201 and response.json()["comment"] == "Spot on"


async def test_bob_can_neither_rate_nor_read_nor_remove_alices_feedback(api, alice, bob):
    run = await answer(api, alice)
    url = feedback_url(run["run_id"])
    await api.post(url, json={"rating": "up", "comment": "mine"}, headers=bearer(alice))
    for method, kwargs in (("POST", {"json": {"rating": "down", "comment": "bob was here"}}), ("GET", {}),
                           ("DELETE", {})):
        response = await api.request(method, url, headers=bearer(bob), **kwargs)
        assert response.status_code == 404 and error_body(response) == {"detail": "Run not found."}
    response = await api.get(f"/sessions/{run['session_id']}/feedback", headers=bearer(bob))
    assert response.status_code == 404
    row = await adb(stored, run["run_id"])
    assert (row.user_id, row.rating, row.comment) == (alice.pk, "up", "mine")
    # and bob's own list of the session he has no part in shows nothing of alice's
    bobs = await answer(api, bob)
    assert (await api.get(f"/sessions/{bobs['session_id']}/feedback", headers=bearer(bob))).json() == {"data": []}


async def test_only_a_finished_answer_of_a_team_run_can_be_rated(api, alice, use_latency):
    unknown = await api.post(feedback_url("no-such-run"), json={"rating": "up"}, headers=bearer(alice))
    assert unknown.status_code == 404
    bad_id = await api.post(feedback_url("bad id!"), json={"rating": "up"}, headers=bearer(alice))
    assert bad_id.status_code == 400

    run = await answer(api, alice, RESEARCH)  # delegated: it has a member run
    member = await adb(lambda: ChatRun.objects.get(parent_run_id=run["run_id"]).run_id)
    response = await api.post(feedback_url(member), json={"rating": "up"}, headers=bearer(alice))
    assert response.status_code == 404

    use_latency(1.0)
    live = await start_run(RunRequest(user_id=alice.pk, message="What is 3+3?"))
    response = await api.post(feedback_url(live.run_id), json={"rating": "up"}, headers=bearer(alice))
    assert response.status_code == 409 and "has not ended" in error_body(response)["detail"]
    await live.wait()
    assert (await api.post(feedback_url(live.run_id), json={"rating": "up"}, headers=bearer(alice))).status_code == 201


@pytest.mark.parametrize(("body", "detail"), [
    ({}, "'rating' is required"),
    ({"rating": "meh"}, "'rating' is required"),
    ({"rating": 1}, "'rating' is required"),
    ({"rating": "up", "comment": 5}, "'comment' must be a string"),
    ({"rating": "up", "comment": "x" * 2001}, "at most 2000 characters"),
    ({"rating": "up", "comment": "nul\u0000here"}, "NUL character"),
])
async def test_a_bad_body_is_a_400_and_stores_nothing(api, alice, body, detail):
    run = await answer(api, alice)
    response = await api.post(feedback_url(run["run_id"]), json=body, headers=bearer(alice))
    assert response.status_code == 400 and detail in error_body(response)["detail"]
    assert await adb(Feedback.objects.count) == 0


async def test_feedback_outlives_the_chat_and_goes_with_the_account(api, alice):
    run = await answer(api, alice)
    await api.post(feedback_url(run["run_id"]), json={"rating": "down", "comment": "wrong"}, headers=bearer(alice))
    assert (await api.delete(f"/sessions/{run['session_id']}", headers=bearer(alice))).status_code == 204
    assert (await adb(stored, run["run_id"])).comment == "wrong"  # staff keep it, with the usage row
    gone = await api.post(feedback_url(run["run_id"]), json={"rating": "up"}, headers=bearer(alice))
    assert gone.status_code == 404  # the chat is gone for alice
    assert not await adb(ChatSession.objects.filter(session_id=run["session_id"]).exists)
    await adb(alice.delete)
    assert await adb(Feedback.objects.count) == 0
    assert await adb(RunUsage.objects.filter(run_id=run["run_id"]).exists)  # usage outlives accounts
