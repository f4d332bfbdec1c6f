"""The real agno OpenAILike client, through Cirkelline, against the loopback fake provider."""

from __future__ import annotations

import pytest

from chat.runs import teams
from metrics.models import RunUsage
from tests.conftest import adb, bearer, parse_sse
from tests.doubles.fake_openai import FakeProvider, estimate_tokens, prompt_tokens

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


@pytest.fixture
def provider(settings):
    # 50 deltas a second, paced like a real provider, so deltas reach the client one by one: the
    # run's stream merges the deltas that are already waiting when it writes (chat.runs.events), and
    # on a loaded machine 5 ms apart (200 a second) several often were.
    with FakeProvider(answer_words=12, tokens_per_second=50, keep_alive=False) as fake:
        settings.CIRKELLINE_MODEL = "openai-like:fake"
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        teams.prototype.cache_clear()
        yield fake


async def test_a_delegated_run_streams_tokens_and_records_usage(api, alice, provider):
    response = await api.post(RUNS, data={"message": "Please research the history of Copenhagen"},
                              headers=bearer(alice))
    frames = parse_sse(response.text)
    names = [f.event for f in frames]

    assert names[0] == "TeamRunStarted" and names[-1] == "TeamRunCompleted"
    delegation = next(f for f in frames if f.event == "TeamToolCallStarted")
    assert delegation.data["tool"]["tool_name"] == "delegate_task_to_member"
    assert delegation.data["tool"]["tool_args"]["member_id"] == "research-specialist"
    member_deltas = [f.data["content"] for f in frames if f.event == "RunContent" and f.data.get("content")]
    leader_deltas = [f.data["content"] for f in frames if f.event == "TeamRunContent" and f.data.get("content")]
    assert len(member_deltas) > 5 and len(leader_deltas) > 5  # tokens arrive one by one
    assert "".join(leader_deltas) == frames[-1].data["content"]
    assert "".join(member_deltas).strip() in frames[-1].data["content"]  # the leader summarised the member

    requests = provider.requests
    assert [r.stream for r in requests] == [True, True, True] and all(r.include_usage for r in requests)
    assert [("delegate_task_to_member" in r.tool_names) for r in requests] == [True, False, True]

    row = await adb(RunUsage.objects.get, run_id=frames[0].data["run_id"])
    expected_prompt = sum(prompt_tokens(r.messages) for r in requests)
    assert row.input_tokens == expected_prompt
    assert row.output_tokens > 0 and row.total_tokens == row.input_tokens + row.output_tokens
    assert (row.model_calls, row.delegations, row.member_runs, row.status) == (3, 1, 1, "completed")
    assert row.model == "openai-like:fake"
    assert await provider.wait_idle(10.0)


async def test_a_non_streamed_run_returns_the_answer(api, alice, provider):
    response = await api.post(RUNS, data={"message": "Hello there", "stream": "false"}, headers=bearer(alice))
    body = response.json()
    assert response.status_code == 200 and body["status"] == "COMPLETED"
    # the fake delegates every leader call it can; the leader's answer follows the member's
    assert [m["agent_id"] for m in body["member_responses"]] == ["research-specialist"]
    completion = estimate_tokens(len(body["content"]))
    assert body["metrics"]["output_tokens"] >= completion
    assert await provider.wait_idle(10.0)


@pytest.mark.parametrize(("answer", "stored_as", "streamed_as"), [
    ("before\x00after", "before\ufffdafter", "before\x00after"),
    ("before\ud800after", "before\ufffdafter", "before?after"),  # a lone surrogate has no UTF-8 form
])
async def test_an_answer_no_database_could_hold_is_still_stored(api, alice, provider, answer, stored_as,
                                                                 streamed_as):
    """PostgreSQL text and jsonb hold neither NUL nor a lone surrogate: the stored copy gets
    U+FFFD, the run and its usage row are not lost, and the stream does not break."""
    from chat.models import ChatRun
    from tests.doubles.fake_openai import Behaviour

    provider.set_default(Behaviour.say(answer))
    response = await api.post(RUNS, data={"message": "Hello there", "stream": "false"}, headers=bearer(alice))
    body = response.json()
    assert response.status_code == 200, body
    assert body["content"] == answer  # the client gets the answer as the provider sent it

    row = await adb(RunUsage.objects.get, run_id=body["run_id"])
    stored = await adb(ChatRun.objects.get, run_id=body["run_id"])
    assert row.status == "completed"
    assert stored.payload["content"] == stored_as

    streamed = await api.post(RUNS, data={"message": "Hello again"}, headers=bearer(alice))
    frames = parse_sse(streamed.text)
    assert frames[-1].event == "TeamRunCompleted" and frames[-1].data["content"] == streamed_as
