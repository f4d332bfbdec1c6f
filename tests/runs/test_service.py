"""The run service: events, terminal events, usage rows, history, cancellation, deadlines."""

from __future__ import annotations

import asyncio

import pytest

from chat.agents.scripted import provider_error
from chat.errors import RunAlreadyEnded, RunNotFound, SessionNotFound
from chat.models import ChatRun, ChatSession
from chat.runs import RunRequest, cancel_run, start_run
from metrics.models import RunUsage
from tests.conftest import adb

pytestmark = pytest.mark.django_db(transaction=True)

TERMINAL = {"TeamRunCompleted", "TeamRunError", "TeamRunCancelled"}


async def run_to_end(user, message, **kwargs):
    handle = await start_run(RunRequest(user_id=user.pk, message=message, **kwargs))
    events = [event async for event in handle.events()]
    return handle, events, await handle.wait()


def usage_row(run_id) -> RunUsage:
    return RunUsage.objects.get(run_id=run_id)


async def test_a_delegated_run_bills_the_leader_and_every_member(alice, recorder):
    handle, events, result = await run_to_end(alice, "Please research the history of Copenhagen")

    assert result.status == "completed"
    output = result.output
    assert [m.agent_id for m in output.member_responses] == ["research-specialist"]
    leader = output.metrics
    member = output.member_responses[0].metrics
    row = await adb(usage_row, handle.run_id)
    assert row.input_tokens == leader.input_tokens + member.input_tokens
    assert row.output_tokens == leader.output_tokens + member.output_tokens
    assert row.total_tokens == leader.total_tokens + member.total_tokens > leader.total_tokens
    # and equal to what the scripted model reported call by call
    per_call = [e for e in events if e.event in ("TeamModelRequestCompleted", "ModelRequestCompleted")]
    assert row.total_tokens == sum(e.total_tokens for e in per_call)
    assert (row.model_calls, row.delegations, row.member_runs) == (3, 1, 1)
    assert len(recorder.for_run(handle.run_id)) == 3
    assert row.ttft_ms is not None and row.duration_ms >= row.ttft_ms


async def test_a_run_ends_with_exactly_one_terminal_event(alice):
    _, events, result = await run_to_end(alice, "Please research the history of Copenhagen")
    names = [e.event for e in events]
    assert [n for n in names if n in TERMINAL] == ["TeamRunCompleted"]
    assert names[-1] == "TeamRunCompleted"
    assert result.terminal is events[-1]


@pytest.mark.parametrize(
    ("setup", "status", "error_type", "terminal"),
    [
        ("ok", "completed", "", "TeamRunCompleted"),
        ("provider_500", "error", "provider_error", "TeamRunError"),
        ("rate_limited", "rate_limited", "rate_limited", "TeamRunError"),
        ("deadline", "timed_out", "timeout", "TeamRunError"),
    ],
)
async def test_every_run_leaves_one_usage_row_with_a_terminal_status(
    alice, settings, failures, use_latency, setup, status, error_type, terminal
):
    settings.CIRKELLINE_MAX_RETRIES = 0
    if setup == "provider_500":
        failures.push(provider_error(500))
    elif setup == "rate_limited":
        failures.push(provider_error(429))
    elif setup == "deadline":
        settings.CIRKELLINE_RUN_TIMEOUT = 0.3
        use_latency(2.0)

    handle, events, result = await run_to_end(alice, "Please research the history of Copenhagen")

    assert (result.status, result.error_type) == (status, error_type)
    assert [e.event for e in events if e.event in TERMINAL] == [terminal]
    if terminal == "TeamRunError":
        assert events[-1].error_type == error_type
        assert events[-1].content and "Traceback" not in events[-1].content
    rows = await adb(lambda: list(RunUsage.objects.filter(run_id=handle.run_id)))
    assert len(rows) == 1 and rows[0].status == status and rows[0].error_type == error_type


async def test_cancelling_a_run_stops_it_and_records_the_tokens_spent(alice, use_latency):
    latency = 1.5  # per provider call; the run makes three unless it is stopped
    use_latency(latency)
    handle = await start_run(RunRequest(user_id=alice.pk, message="Please research Copenhagen"))
    events = []
    async for event in handle.events():
        events.append(event)
        if event.event == "RunStarted":  # the member is working: cancel now
            assert await cancel_run(alice.pk, handle.run_id) == "cancelled"
    result = await handle.wait()

    assert result.status == "cancelled"
    assert [e.event for e in events if e.event in TERMINAL] == ["TeamRunCancelled"]
    row = await adb(usage_row, handle.run_id)
    assert row.status == "cancelled"
    # the leader's first call (the delegation) had completed and is billed; so is the member's
    # call, cut off in flight: its prompt, counted locally
    assert row.model_calls == 2 and row.total_tokens > row.estimated_tokens > 0
    # it waited for the leader's call, not for the member's call it cancelled (another `latency`)
    assert latency * 1000 <= row.duration_ms < 2 * latency * 1000
    with pytest.raises(RunAlreadyEnded):
        await cancel_run(alice.pk, handle.run_id)


async def test_a_user_cannot_cancel_someone_elses_run(alice, bob, use_latency):
    use_latency(0.2)
    handle = await start_run(RunRequest(user_id=alice.pk, message="hello"))
    with pytest.raises(RunNotFound):
        await cancel_run(bob.pk, handle.run_id)
    assert (await handle.wait()).status == "completed"


async def test_the_second_message_of_a_session_sees_the_first(alice, recorder):
    first, _, _ = await run_to_end(alice, "My name is Alice and I like herring.")
    second, _, result = await run_to_end(alice, "What is my name?", session_id=first.session_id)

    assert result.status == "completed"
    leader_call = next(c for c in recorder.for_run(second.run_id) if c.model_label == "leader")
    assert leader_call.roles.count("user") == 2  # the earlier user message came from history
    assert leader_call.roles[:2] == ["system", "user"] and "assistant" in leader_call.roles
    runs = await adb(
        lambda: list(ChatRun.objects.filter(session__session_id=first.session_id, parent_run_id=None)
                     .values_list("run_id", flat=True))
    )
    assert runs == [first.run_id, second.run_id]


async def test_session_state_persists_across_runs(alice):
    first, _, result = await run_to_end(alice, "hello", session_state={"cart": ["apple"]})
    assert result.output.session_state == {"cart": ["apple"]}
    await run_to_end(alice, "hello again", session_id=first.session_id)
    _, _, third = await run_to_end(alice, "and again", session_id=first.session_id,
                                   session_state={"wishlist": ["pear"]})

    # the third run's state is the stored state merged with what it brought
    assert third.output.session_state == {"cart": ["apple"], "wishlist": ["pear"]}
    stored = await adb(lambda: ChatSession.objects.get(session_id=first.session_id).data)
    assert stored["session_data"]["session_state"] == {"cart": ["apple"], "wishlist": ["pear"]}


async def test_a_foreign_session_id_is_refused_before_anything_runs(alice, bob):
    first, _, _ = await run_to_end(alice, "hello")
    with pytest.raises(SessionNotFound):
        await start_run(RunRequest(user_id=bob.pk, message="hi", session_id=first.session_id))
    assert await adb(lambda: RunUsage.objects.filter(user=bob).count()) == 0
    assert await adb(lambda: ChatRun.objects.filter(user=bob).count()) == 0


async def test_retries_are_recorded_and_the_run_succeeds(alice, settings, failures):
    settings.CIRKELLINE_MAX_RETRIES = 2
    settings.CIRKELLINE_RETRY_DELAY = 0.01
    failures.push(provider_error(503), times=2)
    handle, _, result = await run_to_end(alice, "hello")
    assert result.status == "completed"
    row = await adb(usage_row, handle.run_id)
    assert row.retries == 2 and row.backoff_seconds > 0


async def test_deep_research_configuration_stays_with_its_own_run(alice, recorder, use_latency):
    use_latency(0.2)
    deep = RunRequest(user_id=alice.pk, message="Research the history of Copenhagen", deep_research=True)
    plain = RunRequest(user_id=alice.pk, message="Research the history of Aarhus")
    handles = [await start_run(deep), await start_run(plain)]
    results = await asyncio.gather(*(h.wait() for h in handles))
    assert [r.status for r in results] == ["completed", "completed"]

    deep_calls = recorder.for_run(handles[0].run_id)
    plain_calls = recorder.for_run(handles[1].run_id)
    deep_leader = [c for c in deep_calls if c.model_label == "leader"]
    deep_member = [c for c in deep_calls if c.model_label == "research-specialist"]
    plain_leader = [c for c in plain_calls if c.model_label == "leader"]
    plain_member = [c for c in plain_calls if c.model_label == "research-specialist"]
    assert deep_member and plain_member
    assert all("Deep research mode is on" in c.system for c in deep_leader)
    assert all({"think", "analyze"} <= set(c.tool_names) for c in deep_member)
    assert not any("Deep research" in c.system for c in plain_leader + plain_member)
    assert not any({"think", "analyze"} & set(c.tool_names) for c in plain_member)
    rows = await adb(
        lambda: dict(RunUsage.objects.filter(run_id__in=[h.run_id for h in handles])
                     .values_list("run_id", "deep_research"))
    )
    assert rows == {handles[0].run_id: True, handles[1].run_id: False}
