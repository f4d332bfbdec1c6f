"""Fault matrix: every provider fault, through agno's real OpenAILike client and the fake provider.

Per case and per mode (streamed and not): the HTTP status or terminal event, the usage row's
status and tokens, no duplicated text, and no provider connection left open a second after
the run ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chat.runs import teams
from metrics.models import RunUsage
from tests.conftest import adb, bearer, parse_sse
from tests.doubles.fake_openai import Behaviour, FakeProvider, Fault, Outcome, prompt_tokens

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
OK = Behaviour()


@pytest.fixture
def provider(settings):
    with FakeProvider(answer_words=16, keep_alive=False) as fake:
        settings.CIRKELLINE_MODEL = "openai-like:fake"
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        settings.CIRKELLINE_MAX_RETRIES = 2
        settings.CIRKELLINE_RETRY_DELAY = 0.05
        settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 1.0
        settings.CIRKELLINE_STREAM_IDLE_TIMEOUT = 0.5
        teams.prototype.cache_clear()
        yield fake


@dataclass
class Case:
    # Behaviours for the provider calls in order: leader (delegates), member (answers), leader (final).
    script: tuple
    status: str  # RunUsage status
    http: int  # non-streamed HTTP status
    terminal: str  # streamed terminal event
    error_type: str = ""
    retries: int = 0
    discarded: bool = False  # partial output was streamed, then retried
    members: int = 1


CASES = {
    "429 with Retry-After, then ok": Case((Behaviour.rate_limited(retry_after="0"),), "completed", 200,
                                          "TeamRunCompleted", retries=1),
    "429 without Retry-After, then ok": Case((Behaviour.rate_limited(retry_after=None),), "completed", 200,
                                             "TeamRunCompleted", retries=1),
    "429 until retries run out": Case((Behaviour.rate_limited(retry_after="0"),) * 3, "rate_limited", 429,
                                      "TeamRunError", "rate_limited", retries=2, members=0),
    "500 once": Case((Behaviour.http_error(500),), "completed", 200, "TeamRunCompleted", retries=1),
    "503 until retries run out": Case((Behaviour.http_error(503),) * 3, "error", 502, "TeamRunError",
                                      "provider_error", retries=2, members=0),
    "529 once": Case((Behaviour.http_error(529),), "completed", 200, "TeamRunCompleted", retries=1),
    "connection reset mid-stream": Case((OK, Behaviour.reset(after=3)), "completed", 200, "TeamRunCompleted",
                                        retries=1, discarded=True),
    "stalled stream": Case((OK, Behaviour.stall(after=3)), "completed", 200, "TeamRunCompleted", retries=1,
                           discarded=True),
    "malformed chunk": Case((OK, Behaviour.malformed_chunk(after=3)), "completed", 200, "TeamRunCompleted",
                            retries=1, discarded=True),
    "slow first byte": Case((Behaviour.slow_first_byte(3.0),), "timed_out", 504, "TeamRunError", "timeout",
                            members=0),
    "delegation to an unknown member": Case((Behaviour.unknown_member(),), "completed", 200, "TeamRunCompleted",
                                            members=0),
    "delegation with an empty task": Case((Behaviour.empty_task(),), "completed", 200, "TeamRunCompleted"),
}


def _apply_discards(frames) -> dict[str, str]:
    """Each run's streamed text, as a client following RunContentDiscarded rebuilds it."""
    texts: dict[str, str] = {}
    for frame in frames:
        data = frame.data
        if frame.event in ("RunContent", "TeamRunContent") and isinstance(data.get("content"), str):
            texts[data["run_id"]] = texts.get(data["run_id"], "") + data["content"]
        elif frame.event in ("RunContentDiscarded", "TeamRunContentDiscarded"):
            text = texts.get(data["run_id"], "")
            texts[data["run_id"]] = text[: len(text) - data["discarded_characters"]]
    return texts


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "json"])
@pytest.mark.parametrize("name", list(CASES))
async def test_fault_matrix(api, alice, provider, name, stream):
    case = CASES[name]
    provider.enqueue(*case.script)
    response = await api.post(RUNS, data={"message": "Please research the history of Copenhagen",
                                          "stream": str(stream).lower()}, headers=bearer(alice))

    if stream:
        assert response.status_code == 200
        frames = parse_sse(response.text)
        terminals = [f for f in frames if f.event in ("TeamRunCompleted", "TeamRunError", "TeamRunCancelled")]
        assert [f.event for f in terminals] == [case.terminal]
        run_id = frames[-1].data["run_id"]
        if case.error_type:
            assert frames[-1].data["error_type"] == case.error_type
        discards = [f for f in frames if f.event.endswith("ContentDiscarded")]
        assert bool(discards) == case.discarded
        texts = _apply_discards(frames)
        final = frames[-1].data
        if case.terminal == "TeamRunCompleted":
            assert texts[run_id] == final["content"]  # the leader's text, nothing doubled
            for member in final.get("member_responses") or []:
                assert texts.get(member["run_id"], "") == (member.get("content") or "")
    else:
        assert response.status_code == case.http, response.text
        body = response.json()
        run_id = body["run_id"]
        if case.error_type:
            assert body["error_type"] == case.error_type
            if case.http == 429:
                assert int(response.headers["Retry-After"]) >= 1
        else:
            for member in body["member_responses"]:
                answer = member["content"]
                assert answer and body["content"].count(answer.split(" tok")[0]) == 1

    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert (row.status, row.error_type) == (case.status, case.error_type)
    assert row.retries == case.retries
    assert row.member_runs == case.members
    # calls whose answer (and usage) reached the client in one piece are billed as reported; calls
    # broken mid-answer or cut off by a deadline consumed their prompt too, and are billed from a
    # local count (never below the fake's own count of the prompt); calls refused with an HTTP
    # error are not billed
    completed = [r for r in provider.requests if r.outcome == Outcome.COMPLETED and r.behaviour.fault == Fault.NONE]
    cut = [r for r in provider.requests if r not in completed and r.outcome != Outcome.HTTP_ERROR]
    assert row.model_calls == len(completed) + len(cut)
    assert bool(row.estimated_tokens) == bool(cut)
    if cut:
        assert row.input_tokens >= sum(prompt_tokens(r.messages) for r in completed + cut)
    else:
        assert row.input_tokens == sum(prompt_tokens(r.messages) for r in completed)
    assert await provider.wait_idle(10.0), (provider.open_connections, provider.active_requests)


async def test_two_rate_limits_honour_retry_after_then_succeed(api, alice, provider):
    provider.enqueue(Behaviour.rate_limited(retry_after="1"), Behaviour.rate_limited(retry_after="1"))
    response = await api.post(RUNS, data={"message": "hello", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 200 and response.json()["status"] == "COMPLETED"
    row = await adb(RunUsage.objects.get, run_id=response.json()["run_id"])
    assert row.retries == 2 and row.backoff_seconds >= 2.0
    assert [r.outcome for r in provider.requests][:3] == [Outcome.HTTP_ERROR, Outcome.HTTP_ERROR, Outcome.COMPLETED]


async def test_exhausted_rate_limit_retries_give_429_with_the_providers_retry_after(api, alice, provider, settings):
    settings.CIRKELLINE_MAX_RETRIES = 0
    provider.enqueue(Behaviour.rate_limited(retry_after="7"))
    response = await api.post(RUNS, data={"message": "hello", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["error_type"] == "rate_limited"
