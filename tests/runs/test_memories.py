"""Memories in runs: off by default; with the user's switch on, the leader stores memories through
agno's memory manager (agentic memory) and searches them with a tool, always the run's own user's;
the memory manager's model calls are billed to the run (ledger agent `memory`, tokens, cost,
budgets). The offline demo script makes every step deterministic."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from chat.agents.memory import MEMORY_AGENT, SEARCH_TOOL, UPDATE_TOOL
from chat.context import RunContext, current_run
from chat.personal.models import Profile, UserMemory
from chat.runs import RunRequest, start_run
from chat.runs.teams import DB
from metrics.models import ModelCall, PriceRule, RunUsage
from tests.conftest import adb

pytestmark = pytest.mark.django_db(transaction=True)

INPUT, OUTPUT, MILLION = Decimal("1.25"), Decimal("10"), Decimal(1_000_000)


async def memories_on(*users) -> None:
    for user in users:
        await adb(Profile.objects.change, user.pk, {"memories_enabled": True})


async def run(user, message, **kwargs):
    handle = await start_run(RunRequest(user_id=user.pk, username=user.username, message=message, **kwargs))
    events = [event async for event in handle.events()]
    result = await handle.wait()
    assert result.status == "completed", result.message
    return handle, events, result


def tool_calls(events) -> list[tuple[str, dict]]:
    return [(e.tool.tool_name, e.tool.tool_args or {}) for e in events if e.event == "TeamToolCallStarted"]


def memories_of(user) -> list[tuple[str, list[str]]]:
    return list(UserMemory.objects.filter(user=user).order_by("id").values_list("memory", "topics"))


async def test_memories_are_off_by_default_and_nothing_is_stored(alice, recorder):
    handle, events, result = await run(alice, "Remember that my sister is called Ida")
    leader = [c for c in recorder.for_run(handle.run_id) if c.model_label == "leader"]
    assert not {UPDATE_TOOL, SEARCH_TOOL} & set(leader[0].tool_names)
    assert "Memory is on" not in leader[0].system
    assert tool_calls(events) == [] and await adb(memories_of, alice) == []
    assert not any(c.model_label == MEMORY_AGENT for c in recorder.for_run(handle.run_id))


async def test_alice_tells_cirkelline_to_remember_and_it_is_stored_as_hers(alice, bob, recorder):
    await memories_on(alice)
    handle, events, result = await run(alice, "Remember that my sister is called Ida")
    assert tool_calls(events) == [(UPDATE_TOOL, {"task": "Remember this about the user: my sister is called Ida"})]
    assert "I will remember that: My sister is called Ida." in result.content
    assert await adb(memories_of, alice) == [("My sister is called Ida.", ["family"])]
    assert await adb(memories_of, bob) == []
    # not pasted into the prompt: the leader's prompt has no memory in it, only the tools
    [first] = [c for c in recorder.for_run(handle.run_id) if c.model_label == "leader"][:1]
    assert {UPDATE_TOOL, SEARCH_TOOL} <= set(first.tool_names) and "Ida" not in first.system


async def test_the_search_tool_finds_only_the_runs_own_users_memories(alice, bob, recorder):
    await memories_on(alice, bob)
    await adb(UserMemory.objects.save_for, bob.pk, memory="Bob's sister is called Eva.", topics=["family"])
    await run(alice, "Remember that my sister is called Ida")
    handle, events, result = await run(alice, "What do you remember about my sister?")
    assert tool_calls(events) == [(SEARCH_TOOL, {"query": "my sister"})]
    assert "My sister is called Ida." in result.content and "Eva" not in result.content
    completed = [e for e in events if e.event == "TeamToolCallCompleted"]
    assert "Ida" in str(completed[0].tool.result) and "Eva" not in str(completed[0].tool.result)

    _, events, result = await run(bob, "What do you remember about me?")
    assert "Eva" in result.content and "Ida" not in result.content


async def test_forget_deletes_the_memory(alice, recorder):
    await memories_on(alice)
    await run(alice, "Remember that I am allergic to peanuts")
    await run(alice, "Remember that my sister is called Ida")
    _, events, result = await run(alice, "Forget that my sister is called Ida")
    assert tool_calls(events)[0][0] == UPDATE_TOOL
    assert await adb(memories_of, alice) == [("I am allergic to peanuts.", ["food"])]


async def test_memory_calls_are_in_the_runs_ledger_tokens_cost_and_usage(alice, recorder, api):
    """Guards against the memory manager's model calls going unbilled: agno reports them through
    no event, so only the retry layer sees them (ResilientModel.ledger_agent)."""
    await adb(PriceRule.objects.create, provider="scripted", model_pattern="scripted", input_per_million=INPUT,
              output_per_million=OUTPUT, effective_from=timezone.now() - timedelta(days=1))
    await memories_on(alice)
    handle, events, _ = await run(alice, "Remember that my sister is called Ida")
    calls = recorder.for_run(handle.run_id)
    memory_calls = [c for c in calls if c.model_label == MEMORY_AGENT]
    assert len(memory_calls) == 2  # add_memory, then its report

    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    ledger = {c.agent: c for c in await adb(lambda: list(ModelCall.objects.filter(run_id=handle.run_id)))}
    assert set(ledger) == {"cirkelline", MEMORY_AGENT}
    memory = ledger[MEMORY_AGENT]
    assert memory.calls == 2 and not memory.is_leader
    assert memory.input_tokens == sum(c.usage.input_tokens for c in memory_calls)
    assert memory.output_tokens == sum(c.usage.output_tokens for c in memory_calls)
    assert memory.cost == sum((Decimal(c.usage.input_tokens) * INPUT + Decimal(c.usage.output_tokens) * OUTPUT)
                              / MILLION for c in memory_calls)
    assert row.model_calls == len(calls) == 4
    assert row.total_tokens == sum(c.usage.total_tokens for c in calls)
    assert row.cost == sum(c.cost for c in ledger.values())

    from tests.conftest import bearer
    usage = (await api.get("/usage", headers=bearer(alice))).json()
    assert usage["totals"]["total_tokens"] == row.total_tokens
    assert usage["by_model"][0]["calls"] == 4


async def test_a_run_cannot_reach_another_users_memories_through_the_adapter(alice, bob):
    """Guards against a memory call inside bob's run naming alice (agno passes the run's user;
    this is the adapter's own check, below it)."""
    await adb(UserMemory.objects.save_for, alice.pk, memory="Alice's secret.", topics=["secret"])
    await adb(UserMemory.objects.save_for, bob.pk, memory="Bob's note.")
    token = current_run.set(RunContext(run_id="r-bob", user_id=bob.pk))
    try:
        with pytest.raises(PermissionError):
            await DB.get_user_memories(user_id=str(alice.pk))
        with pytest.raises(PermissionError):
            await DB.search_memories(str(alice.pk), text="secret")
        await DB.clear_memories()  # agno calls it with no user: the run's user's only
    finally:
        current_run.reset(token)
    assert await adb(memories_of, alice) == [("Alice's secret.", ["secret"])]
    assert await adb(memories_of, bob) == []
    with pytest.raises(NotImplementedError):
        await DB.clear_memories()  # outside a run: refused, never everyone's


async def test_a_budget_counts_the_memory_calls(alice, recorder):
    """Guards against memory calls escaping budgets: the month's spend includes them, so a budget
    between the run's cost without them and with them refuses the next run."""
    from chat.errors import BudgetExceeded
    from metrics.models import Budget

    big = Decimal(100_000)  # USD per million tokens: costs large enough for a budget's cents
    await adb(PriceRule.objects.create, provider="scripted", model_pattern="scripted", input_per_million=big,
              output_per_million=big, effective_from=timezone.now() - timedelta(days=1))
    await memories_on(alice)
    handle, _, _ = await run(alice, "Remember that my sister is called Ida")
    ledger = {c.agent: c.cost for c in await adb(lambda: list(ModelCall.objects.filter(run_id=handle.run_id)))}
    with_memory = sum(ledger.values())
    without = with_memory - ledger[MEMORY_AGENT]
    limit = ((with_memory + without) / 2).quantize(Decimal("0.01"))
    assert without < limit < with_memory
    await adb(Budget.objects.create, user=alice, monthly_limit=limit)
    with pytest.raises(BudgetExceeded):
        await start_run(RunRequest(user_id=alice.pk, username="alice", message="hello"))
