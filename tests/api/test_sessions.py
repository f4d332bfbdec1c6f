"""Session routes (AgentOS shapes), owner-only, and the storage behind them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import ChatRun, ChatSession
from tests.conftest import adb, bearer, error_body

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


async def chat(api, user, message, session_id=None):
    data = {"message": message, "stream": "false"}
    if session_id:
        data["session_id"] = session_id
    response = await api.post(RUNS, data=data, headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()


async def test_sessions_list_in_agentos_shape_newest_first(api, alice, bob):
    one = await chat(api, alice, "First question about herring")
    two = await chat(api, alice, "Second topic: audio podcasts")
    await chat(api, bob, "Bob's own chat")

    body = (await api.get("/sessions?type=team", headers=bearer(alice))).json()
    assert [s["session_id"] for s in body["data"]] == [two["session_id"], one["session_id"]]
    first = body["data"][1]
    assert first["session_name"] == "First question about herring"
    assert first["session_type"] == "team" and first["team_id"] == "cirkelline"
    assert first["user_id"] == str(alice.pk) and first["total_tokens"] > 0
    assert first["created_at"] and first["updated_at"]
    assert body["meta"]["total_count"] == 2 and body["meta"]["page"] == 1 and body["meta"]["total_pages"] == 1

    paged = (await api.get("/sessions?limit=1&page=2&sort_order=asc", headers=bearer(alice))).json()
    assert [s["session_id"] for s in paged["data"]] == [two["session_id"]]
    assert paged["meta"]["total_pages"] == 2


async def test_a_session_detail_has_its_chat_history(api, alice):
    first = await chat(api, alice, "What is 2+2?")
    await chat(api, alice, "And 3*3?", first["session_id"])
    detail = (await api.get(f"/sessions/{first['session_id']}", headers=bearer(alice))).json()
    assert detail["session_id"] == first["session_id"]
    contents = [(m["role"], m["content"]) for m in detail["chat_history"] if m["role"] in ("user", "assistant")]
    assert contents == [("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3*3?"), ("assistant", "9")]


async def test_session_runs_lists_team_and_member_runs(api, alice):
    body = await chat(api, alice, "Please research the history of Copenhagen")
    runs = (await api.get(f"/sessions/{body['session_id']}/runs", headers=bearer(alice))).json()
    kinds = sorted((r.get("team_id") or "", r.get("agent_id") or "") for r in runs)
    assert kinds == [("", "research-specialist"), ("cirkelline", "")]
    team_run = next(r for r in runs if r.get("team_id"))
    assert team_run["run_id"] == body["run_id"] and team_run["status"] == "COMPLETED"
    assert team_run["run_input"] == "Please research the history of Copenhagen"


async def test_rename_and_delete(api, alice):
    body = await chat(api, alice, "hello")
    url = f"/sessions/{body['session_id']}"
    renamed = await api.post(f"{url}/rename", json={"session_name": "Greetings"}, headers=bearer(alice))
    assert renamed.status_code == 200 and renamed.json()["session_name"] == "Greetings"
    listed = (await api.get("/sessions", headers=bearer(alice))).json()["data"]
    assert listed[0]["session_name"] == "Greetings"
    # a later run keeps the chosen name
    await chat(api, alice, "hello again", body["session_id"])
    assert (await api.get(url, headers=bearer(alice))).json()["session_name"] == "Greetings"

    assert (await api.delete(url, headers=bearer(alice))).status_code == 204
    assert (await api.get(url, headers=bearer(alice))).status_code == 404
    assert await adb(ChatRun.objects.filter(session__session_id=body["session_id"]).count) == 0


async def test_another_user_gets_404_on_every_session_route(api, alice, bob):
    body = await chat(api, alice, "private")
    url = f"/sessions/{body['session_id']}"
    responses = [
        await api.get(url, headers=bearer(bob)),
        await api.get(f"{url}/runs", headers=bearer(bob)),
        await api.post(f"{url}/rename", json={"session_name": "mine now"}, headers=bearer(bob)),
        await api.delete(url, headers=bearer(bob)),
    ]
    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert all(error_body(r) == {"detail": "Session not found."} for r in responses)
    assert (await api.get("/sessions", headers=bearer(bob))).json()["data"] == []
    session = await adb(ChatSession.objects.get, session_id=body["session_id"])
    assert session.session_name == "private"  # untouched


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "quote's", "-leading", "semi;colon"])
async def test_malformed_session_ids_are_400(api, alice, bad):
    from urllib.parse import quote

    response = await api.get(f"/sessions/{quote(bad, safe='')}", headers=bearer(alice))
    assert response.status_code == 400 and "session id" in response.json()["detail"]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "page=0", "sort_order=sideways", "sort_by=password",
                                   "type=robot", "page=", "limit=1_0", "page=2%0A"])
async def test_bad_listing_parameters_are_400(api, alice, query):
    assert (await api.get(f"/sessions?{query}", headers=bearer(alice))).status_code == 400


def test_listing_sessions_never_reads_run_payloads(alice):
    session = ChatSession.objects.create(session_id="s1", user=alice, data={"session_data": {}})
    ChatRun.objects.create(run_id="r1", session=session, user=alice, run_type="team", status="COMPLETED",
                           payload={"huge": "x" * 10_000})
    with CaptureQueriesContext(connection) as queries:
        rows, total = ChatSession.objects.page(alice.pk)
    assert total == 1 and rows[0]["session_id"] == "s1"
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    # Runs are only probed for existence (a session shows once one is stored), never read.
    assert "payload" not in sql and sql.count("chat_chatrun") == sql.count("EXISTS(SELECT 1 AS")
