"""A member whose streamed answer is cut and retried hands the leader its answer exactly once.

agno builds the delegation tool's result by concatenating every content event the member
streamed; the text a retried call had already streamed is in there too. These tests drive the
real OpenAILike client against the fake provider, which cuts the member's call mid-stream, and
read the tool result where it matters: what the provider received in the leader's next request,
the leader's final answer, and the stored team run.
"""

from __future__ import annotations

import pytest

from chat.models import ChatRun
from chat.runs import teams
from metrics.models import RunUsage
from tests.conftest import adb, bearer, parse_sse
from tests.doubles.fake_openai import Behaviour, FakeProvider, compose_answer

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
DELEGATE = "delegate_task_to_member"
# The leader's final answer quotes up to this many words of the tool result: all of it.
SUMMARY_WORDS = 400


@pytest.fixture
def provider(settings):
    with FakeProvider(answer_words=16, keep_alive=False) as fake:
        settings.CIRKELLINE_MODEL = "openai-like:fake"
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        settings.CIRKELLINE_MAX_RETRIES = 2
        settings.CIRKELLINE_RETRY_DELAY = 0.01
        settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 2.0
        settings.CIRKELLINE_STREAM_IDLE_TIMEOUT = 0.3
        teams.prototype.cache_clear()
        yield fake


def _tool_messages(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages if m.get("role") == "tool"]


CUTS = {
    "one reset": (Behaviour.reset(after=4),),
    "two resets": (Behaviour.reset(after=4), Behaviour.reset(after=7)),
    "a stall": (Behaviour.stall(after=4),),
}


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "json"])
@pytest.mark.parametrize("cut", list(CUTS))
async def test_a_member_retried_after_partial_output_hands_the_leader_its_answer_once(
    api, alice, provider, cut, stream
):
    """Guards against the delegation tool result holding the member's cut-off text followed by
    the retry's full text (agno concatenates every content event the member streamed)."""
    faults = CUTS[cut]
    # leader delegates; the member's call is cut (once or twice), then answers; the leader sums up
    provider.enqueue(Behaviour(), *faults, Behaviour(), Behaviour(answer_words=SUMMARY_WORDS))
    response = await api.post(RUNS, data={"message": "Please research the history of Copenhagen",
                                          "stream": str(stream).lower()}, headers=bearer(alice))
    assert response.status_code == 200, response.text
    if stream:
        frames = parse_sse(response.text)
        assert frames[-1].event == "TeamRunCompleted"
        final = frames[-1].data
        assert len([f for f in frames if f.event == "RunContentDiscarded"]) == len(faults)
    else:
        final = response.json()
    run_id = final["run_id"]
    member = await adb(ChatRun.objects.get, parent_run_id=run_id)
    answer = member.payload["content"]
    assert answer and answer.startswith("Answer to:")  # the member's stored run is its answer, once

    # what the leader's model received as the tool result: exactly the member's answer
    leader_calls = [r for r in provider.requests if DELEGATE in r.tool_names]
    assert len(leader_calls) == 2
    assert _tool_messages(leader_calls[-1].messages) == [answer]
    # the final answer quotes the tool result whole: one copy, nothing before it
    assert final["content"] == compose_answer("Summary of results:", answer, SUMMARY_WORDS)

    team = await adb(ChatRun.objects.get, run_id=run_id)
    assert [t["result"] for t in team.payload["tools"] if t["tool_name"] == DELEGATE] == [answer]
    assert _tool_messages(team.payload["messages"]) == [answer]
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert (row.status, row.retries, row.member_runs) == ("completed", len(faults), 1)
    assert provider.wait_idle_sync(1.0)
