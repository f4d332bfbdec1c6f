"""The storage adapter's memory methods (agno's AsyncBaseDb interface over chat.personal), on
SQLite and PostgreSQL alike (run this file with DATABASE_URL for the latter): agno's shapes, its
filters and paging, one user's memories only; and drift tests pinning the agno code they serve."""

from __future__ import annotations

import inspect

import pytest
from agno.db.base import AsyncBaseDb
from agno.db.schemas import UserMemory

from chat.personal.memories import MemoriesFull
from chat.personal.models import MemoryTopic
from chat.personal.models import UserMemory as UserMemoryRow
from chat.storage.agno_db import DjangoAgnoDb
from tests.conftest import adb
from tests.drift import check_source

pytestmark = pytest.mark.django_db(transaction=True)

DB = DjangoAgnoDb()
MEMORY_METHODS = ("clear_memories", "delete_user_memory", "delete_user_memories", "get_all_memory_topics",
                  "get_user_memory", "get_user_memories", "get_user_memory_stats", "upsert_user_memory")


async def add(user, text, topics=None, memory_id=None, **extra):
    saved = await DB.upsert_user_memory(UserMemory(memory=text, memory_id=memory_id, topics=topics,
                                                   user_id=str(user.pk), **extra))
    assert saved is not None
    return saved


async def test_a_memory_round_trips_in_agnos_shape(alice):
    saved = await add(alice, "  Likes herring.  ", ["Food", " food ", "Preferences"], memory_id="m-1",
                      input="remember I like herring", team_id="cirkelline")
    assert isinstance(saved, UserMemory)
    assert (saved.memory_id, saved.memory, saved.topics, saved.user_id) == ("m-1", "Likes herring.",
                                                                             ["food", "preferences"], str(alice.pk))
    assert saved.input == "remember I like herring" and saved.team_id == "cirkelline"
    assert isinstance(saved.created_at, int) and saved.updated_at >= saved.created_at

    raw = await DB.get_user_memory("m-1", deserialize=False, user_id=str(alice.pk))
    assert raw["memory"] == "Likes herring." and raw["topics"] == ["food", "preferences"]
    assert UserMemory.from_dict(raw).to_dict()["memory_id"] == "m-1"
    assert await adb(lambda: sorted(MemoryTopic.objects.values_list("name", flat=True))) == ["food", "preferences"]


async def test_updating_replaces_text_and_topics(alice):
    await add(alice, "Lives in Aarhus.", ["location"], memory_id="m-1")
    await add(alice, "Lives in Copenhagen since 2024.", ["location", "moves"], memory_id="m-1")
    [memory] = await DB.get_user_memories(user_id=str(alice.pk))
    assert (memory.memory, memory.topics) == ("Lives in Copenhagen since 2024.", ["location", "moves"])
    assert await DB.get_all_memory_topics(user_id=str(alice.pk)) == ["location", "moves"]


async def test_filters_paging_and_order_match_agnos_adapters(alice):
    for i, (text, topics) in enumerate([("Has a sister, Ida.", ["family"]), ("Drinks black coffee.", ["food"]),
                                        ("Cooks for the family on Sundays.", ["family", "food"])]):
        await add(alice, text, topics, memory_id=f"m-{i}")
    everything, total = await DB.get_user_memories(user_id=str(alice.pk), deserialize=False)
    assert total == 3 and [m["memory_id"] for m in everything] == ["m-2", "m-1", "m-0"]  # newest change first
    both, total = await DB.get_user_memories(user_id=str(alice.pk), topics=["family", "food"], deserialize=False)
    assert [m["memory_id"] for m in both] == ["m-2"] and total == 1  # every topic, as agno's SQL adapters
    found, total = await DB.get_user_memories(user_id=str(alice.pk), search_content="COFFEE", deserialize=False)
    assert [m["memory_id"] for m in found] == ["m-1"]
    page, total = await DB.get_user_memories(user_id=str(alice.pk), limit=2, page=2, sort_by="created_at",
                                             sort_order="asc", deserialize=False)
    assert [m["memory_id"] for m in page] == ["m-2"] and total == 3
    assert await DB.get_all_memory_topics(user_id=str(alice.pk)) == ["family", "food"]
    stats, count = await DB.get_user_memory_stats(user_id=str(alice.pk))
    assert count == 1 and stats[0]["user_id"] == str(alice.pk) and stats[0]["total_memories"] == 3
    assert isinstance(stats[0]["last_memory_updated_at"], int)


async def test_two_users_never_see_or_change_each_others_memories(alice, bob):
    await add(alice, "Alice's memory.", ["secret"], memory_id="alice-1")
    await add(bob, "Bob's memory.", ["notes"], memory_id="bob-1")
    assert [m.memory for m in await DB.get_user_memories(user_id=str(bob.pk))] == ["Bob's memory."]
    assert await DB.get_user_memory("alice-1", user_id=str(bob.pk)) is None
    assert await DB.get_all_memory_topics(user_id=str(bob.pk)) == ["notes"]
    # bob upserting alice's id (the memory manager's update tool takes a model-chosen id) changes nothing
    assert await DB.upsert_user_memory(UserMemory(memory="Mallory was here.", memory_id="alice-1",
                                                  user_id=str(bob.pk))) is None
    await DB.delete_user_memory("alice-1", user_id=str(bob.pk))
    await DB.delete_user_memories(["alice-1", "bob-1"], user_id=str(bob.pk))
    assert [m.memory for m in await DB.get_user_memories(user_id=str(alice.pk))] == ["Alice's memory."]
    assert await DB.get_user_memories(user_id=str(bob.pk)) == []
    assert await DB.get_user_memory_stats(user_id=str(bob.pk)) == ([], 0)


async def test_no_method_works_without_a_user(alice):
    await add(alice, "Alice's memory.")
    for call in (DB.get_user_memories(), DB.get_all_memory_topics(), DB.get_user_memory_stats(),
                 DB.get_user_memory("x"), DB.delete_user_memory("x"), DB.clear_memories(),
                 DB.upsert_user_memory(UserMemory(memory="orphan"))):
        with pytest.raises(NotImplementedError):
            await call
    assert await adb(UserMemoryRow.objects.count) == 1


async def test_a_user_keeps_at_most_the_configured_number_of_memories(alice, settings):
    settings.CIRKELLINE_MEMORIES_MAX = 2
    await add(alice, "one", memory_id="m-1")
    await add(alice, "two", memory_id="m-2")
    with pytest.raises(MemoriesFull):
        await DB.upsert_user_memory(UserMemory(memory="three", user_id=str(alice.pk)))
    await add(alice, "two, changed", memory_id="m-2")  # changing one is not adding one
    assert await adb(UserMemoryRow.objects.count) == 2


# --- drift: the agno code these methods serve -------------------------------------------------

@pytest.mark.parametrize("name", MEMORY_METHODS)
def test_each_memory_method_takes_agnos_parameters(name):
    """Guards against agno changing a memory method's parameters (agno calls them by keyword)."""
    def shape(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert shape(getattr(DjangoAgnoDb, name)) == shape(getattr(AsyncBaseDb, name)), (
        f"agno's AsyncBaseDb.{name} changed its parameters: update chat/storage/agno_db.py")


# agno code the memories rely on -> (sha256 of its source, first 16 hex digits; what relies on it)
UPSTREAM = {
    "agno.memory.manager:MemoryManager._aget_db_tools": (
        "aa75b3c505df6871", "DjangoAgnoDb.clear_memories (agno's clear_memory tool calls it with no user: it must "
                            "clear the run's user's only) and upsert_user_memory (update_memory takes a "
                            "model-chosen id: a foreign one must be refused)"),
    "agno.memory.manager:MemoryManager.aupdate_memory_task": (
        "12d1fb8482700d8c", "DjangoAgnoDb.get_user_memories (called with user_id only: all of them, deserialized)"),
    "agno.memory.manager:MemoryManager.arun_memory_task": (
        "5092ee9c1f51a61e", "chat.agents.memory (the manager's model is called directly, outside any agent run, "
                            "so agno reports no event for it: ResilientModel.ledger_agent bills it)"),
    "agno.memory.manager:MemoryManager.aread_from_db": (
        "35ab3fa6b2871465", "DjangoAgnoDb.get_user_memories (deserialized UserMemory objects with user_id)"),
    "agno.team._default_tools:_get_update_user_memory_function": (
        "fdb83aef65fbc78b", "chat.agents.memory (the tool's user is the run's, never a model argument)"),
    "agno.team._tools:_determine_tools_for_model": (
        "19147758a0968009", "chat.agents.team (enable_agentic_memory with a memory_manager adds update_user_memory)"),
    "agno.team._init:_set_memory_manager": (
        "9a16d7144abad9ec", "chat.agents.team (add_memories_to_context=False keeps memories out of the prompt)"),
    "agno.team._messages:aget_system_message": (
        "91fa0954df4e8588", "chat.agents.team (memories are pasted only with add_memories_to_context; "
                            "additional_context, the user's section, ends the prompt: chat.agents.personal)"),
    "agno.db.schemas.memory:UserMemory": (
        "6fa17d137b7e735e", "chat.personal.memories.record (the dict UserMemory.from_dict reads)"),
    "agno.os.routers.memory.schemas:UserMemorySchema": (
        "b1c8d8920c3c69a3", "chat.api.memories (the memory JSON of AgentOS' routes)"),
    "agno.os.routers.memory.schemas:UserMemoryCreateSchema": (
        "f776b46c7d80d186", "chat.api.memories (POST and PATCH bodies)"),
    "agno.os.routers.memory.schemas:DeleteMemoriesRequest": (
        "5953e51fffb18389", "chat.api.memories (DELETE /memories body)"),
    "agno.os.routers.memory.schemas:UserStatsSchema": (
        "fa46071f35b30e43", "chat.api.memories (GET /user_memory_stats rows)"),
    "agno.client.os:AgentOSClient.list_memories": (
        "df692b8cffcee25b", "chat.api.memories (topics sent as repeated query parameters)"),
}


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_agno_code_memories_rely_on_is_unchanged(name):
    expected, relies = UPSTREAM[name]
    check_source(name, expected, relies, "agno")
