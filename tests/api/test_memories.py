"""AgentOS' memory routes over Cirkelline's memories: same shapes, always the caller's own."""

from __future__ import annotations

import pytest

from chat.personal.models import MemoryTopic, UserMemory
from tests.api.test_openapi import assert_conforms
from tests.conftest import adb, bearer, error_body

pytestmark = pytest.mark.django_db(transaction=True)


async def create(api, user, memory, topics=None, **extra):
    body = {"memory": memory, **({"topics": topics} if topics is not None else {}), **extra}
    response = await api.post("/memories", json=body, headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()


def rows(user) -> list[tuple[str, list[str]]]:
    return list(UserMemory.objects.filter(user=user).order_by("id").values_list("memory", "topics"))


async def test_alice_creates_lists_reads_changes_and_deletes_her_memories(api, alice):
    first = await create(api, alice, "Likes herring.", ["Food", "preferences"])
    assert set(first) == {"memory_id", "memory", "topics", "agent_id", "team_id", "user_id", "updated_at"}
    assert (first["memory"], first["topics"], first["user_id"]) == ("Likes herring.", ["food", "preferences"],
                                                                     str(alice.pk))
    assert first["updated_at"].endswith("Z") and first["agent_id"] is None
    assert_conforms("/memories", "post", 200, first)
    second = await create(api, alice, "Has a sister, Ida.", ["family"])

    listed = (await api.get("/memories", headers=bearer(alice))).json()
    assert [m["memory_id"] for m in listed["data"]] == [second["memory_id"], first["memory_id"]]
    assert listed["meta"]["total_count"] == 2 and listed["meta"]["page"] == 1 and listed["meta"]["limit"] == 20
    assert_conforms("/memories", "get", 200, listed)
    detail = await api.get(f"/memories/{first['memory_id']}", headers=bearer(alice))
    assert detail.status_code == 200 and detail.json() == first

    changed = await api.patch(f"/memories/{first['memory_id']}", json={"memory": "Loves pickled herring.",
                                                                     "topics": ["food"]}, headers=bearer(alice))
    assert changed.status_code == 200 and changed.json()["memory"] == "Loves pickled herring."
    assert (await api.get("/memory_topics", headers=bearer(alice))).json() == ["family", "food"]
    stats = (await api.get("/user_memory_stats", headers=bearer(alice))).json()
    assert stats["data"][0]["user_id"] == str(alice.pk) and stats["data"][0]["total_memories"] == 2
    assert_conforms("/user_memory_stats", "get", 200, stats)

    assert (await api.delete(f"/memories/{first['memory_id']}", headers=bearer(alice))).status_code == 204
    assert await adb(rows, alice) == [("Has a sister, Ida.", ["family"])]
    assert await adb(MemoryTopic.objects.count) == 1  # the deleted memory's topics went with it


async def test_the_list_filters_by_topics_and_content_and_pages(api, alice):
    await create(api, alice, "Has a sister, Ida.", ["family"])
    await create(api, alice, "Drinks black coffee.", ["food"])
    await create(api, alice, "Cooks for the family on Sundays.", ["family", "food"])

    async def listed(query):
        response = await api.get(f"/memories?{query}", headers=bearer(alice))
        assert response.status_code == 200, response.text
        return [m["memory"] for m in response.json()["data"]], response.json()["meta"]

    assert (await listed("topics=family&topics=food"))[0] == ["Cooks for the family on Sundays."]  # agno's client
    assert (await listed("topics=family,food"))[0] == ["Cooks for the family on Sundays."]  # AgentOS' parsing
    assert (await listed("topics=family"))[0] == ["Cooks for the family on Sundays.", "Has a sister, Ida."]
    assert (await listed("search_content=COFFEE"))[0] == ["Drinks black coffee."]
    data, meta = await listed("limit=2&page=2&sort_by=created_at&sort_order=asc")
    assert data == ["Cooks for the family on Sundays."] and meta["total_pages"] == 2 and meta["total_count"] == 3


async def test_bob_never_sees_nor_touches_alices_memories(api, alice, bob):
    """Guards against a memory route trusting the id or a user_id: another user's memory is a 404
    (as an unknown one), naming another user a 403, and nothing of alice's changes."""
    alices = await create(api, alice, "Alice's secret.", ["secret"])
    await create(api, bob, "Bob's note.")
    mid = alices["memory_id"]
    assert [m["memory"] for m in (await api.get("/memories", headers=bearer(bob))).json()["data"]] == ["Bob's note."]
    assert (await api.get("/memory_topics", headers=bearer(bob))).json() == []
    for response in (await api.get(f"/memories/{mid}", headers=bearer(bob)),
                     await api.patch(f"/memories/{mid}", json={"memory": "hacked"}, headers=bearer(bob)),
                     await api.delete(f"/memories/{mid}", headers=bearer(bob))):
        assert response.status_code == 404 and error_body(response) == {"detail": "Memory not found."}
    bulk = await api.request("DELETE", "/memories", json={"memory_ids": [mid]}, headers=bearer(bob))
    assert bulk.status_code == 204  # only bob's among them are deleted: none
    for response in (await api.get(f"/memories?user_id={alice.pk}", headers=bearer(bob)),
                     await api.get("/memory_topics?user_id=alice", headers=bearer(bob)),
                     await api.get(f"/user_memory_stats?user_id={alice.pk}", headers=bearer(bob)),
                     await api.post("/memories", json={"memory": "x", "user_id": str(alice.pk)}, headers=bearer(bob)),
                     await api.request("DELETE", "/memories", json={"all": True, "user_id": str(alice.pk)},
                                       headers=bearer(bob))):
        assert response.status_code == 403 and "must be your own" in error_body(response)["detail"]
    assert await adb(rows, alice) == [("Alice's secret.", ["secret"])]
    # naming yourself (id or username) is fine, as on the runs route
    assert (await api.get(f"/memories?user_id={bob.pk}", headers=bearer(bob))).status_code == 200
    assert (await api.get("/memory_topics?user_id=bob", headers=bearer(bob))).status_code == 200


async def test_delete_all_and_bulk_delete_remove_only_your_own(api, alice, bob):
    a1 = await create(api, alice, "one")
    a2 = await create(api, alice, "two")
    await create(api, alice, "three")
    b1 = await create(api, bob, "bob's")
    response = await api.request("DELETE", "/memories", json={"memory_ids": [a1["memory_id"], a2["memory_id"],
                                                                             b1["memory_id"]]}, headers=bearer(alice))
    assert response.status_code == 204
    assert await adb(rows, alice) == [("three", [])] and await adb(rows, bob) == [("bob's", [])]
    assert (await api.request("DELETE", "/memories", json={"all": True}, headers=bearer(alice))).status_code == 204
    assert await adb(rows, alice) == [] and await adb(rows, bob) == [("bob's", [])]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), [
    ("POST", "/memories", {}, 400, "'memory' is required"),
    ("POST", "/memories", {"memory": "   "}, 400, "'memory' is required"),
    ("POST", "/memories", {"memory": "x" * 5001}, 413, "limit is 5000"),
    ("POST", "/memories", {"memory": "a\x07b"}, 400, "control characters"),
    ("POST", "/memories", {"memory": "ok", "topics": "food"}, 400, "list of strings"),
    ("POST", "/memories", {"memory": "ok", "topics": ["x" * 65]}, 400, "at most 64"),
    ("POST", "/memories", {"memory": "ok", "topics": [f"t{i}" for i in range(21)]}, 400, "at most 20"),
    ("POST", "/memories", {"memory": "ok", "colour": "blue"}, 400, "Unknown field"),
    ("DELETE", "/memories", {}, 400, "'memory_ids' is required"),
    ("DELETE", "/memories", {"memory_ids": []}, 400, "'memory_ids' is required"),
    ("DELETE", "/memories", {"memory_ids": ["a"], "all": True}, 400, "either"),
])
async def test_a_bad_request_is_refused_and_writes_nothing(api, alice, method, path, body, status, words):
    await create(api, alice, "keep me")
    response = await api.request(method, path, json=body, headers=bearer(alice))
    assert response.status_code == status, response.text
    assert words in error_body(response)["detail"]
    assert await adb(rows, alice) == [("keep me", [])]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "page=0", "sort_by=password", "sort_order=up",
                                   "colour=blue", "limit=1&limit=2",
                                   # Not the documented integer, though Python's int() takes them (schemathesis).
                                   "page=", "page=%201", "page=1_0", "limit=%2B5", "page=%D9%A1"])
async def test_bad_list_parameters_are_400s(api, alice, query):
    assert (await api.get(f"/memories?{query}", headers=bearer(alice))).status_code == 400


async def test_a_full_memory_refuses_new_ones_but_allows_changes(api, alice, settings):
    settings.CIRKELLINE_MEMORIES_MAX = 1
    kept = await create(api, alice, "one")
    refused = await api.post("/memories", json={"memory": "two"}, headers=bearer(alice))
    assert refused.status_code == 409 and "delete some" in error_body(refused)["detail"]
    changed = await api.patch(f"/memories/{kept['memory_id']}", json={"memory": "one, changed"}, headers=bearer(alice))
    assert changed.status_code == 200


async def test_writes_need_json_and_reads_need_credentials(api, alice):
    assert (await api.post("/memories", data={"memory": "x"}, headers=bearer(alice))).status_code == 415
    assert (await api.get("/memories")).status_code == 401
    assert await adb(UserMemory.objects.count) == 0
