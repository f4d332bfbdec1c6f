"""The retry layer's policy, through agno's real OpenAILike client and the fake provider: what is
retried, how long it waits, and that it never waits past the run's deadline."""

from __future__ import annotations

import asyncio

import pytest

from chat.runs import teams
from metrics.models import RunUsage
from tests.conftest import adb, bearer
from tests.doubles.fake_openai import Behaviour, FakeProvider, Outcome

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
MESSAGE = "Please research the history of Copenhagen"


@pytest.fixture
def provider(settings):
    with FakeProvider(answer_words=8, keep_alive=False) as fake:
        settings.CIRKELLINE_MODEL = "openai-like:fake"
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        settings.CIRKELLINE_MAX_RETRIES = 2
        # Tiny, so that a wait of a second can only come from the provider's Retry-After.
        settings.CIRKELLINE_RETRY_DELAY = 0.01
        teams.prototype.cache_clear()
        yield fake


async def _run(api, user) -> tuple[object, float]:
    """A non-streamed run; its response and how long it took (event-loop clock)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await api.post(RUNS, data={"message": MESSAGE, "stream": "false"}, headers=bearer(user))
    return response, loop.time() - started


async def test_a_retry_waits_at_least_what_retry_after_asks(api, alice, provider):
    """Guards against not really sleeping for Retry-After (e.g. `asyncio.sleep(0)` in
    chat/agents/retry.py ResilientModel._should_retry, or the exponential back-off used instead):
    the recorded back-off would still say 1 s, but the provider would see the retry at once.
    """
    retry_after = 1.0
    provider.enqueue(Behaviour.rate_limited(retry_after=retry_after))
    response, elapsed = await _run(api, alice)

    assert response.status_code == 200, response.text[:500]
    assert await provider.wait_idle(30.0)  # outcomes are recorded once each response is sent
    first, retry = provider.requests[:2]
    assert first.outcome == Outcome.HTTP_ERROR and retry.outcome == Outcome.COMPLETED
    # A lower bound: a slow machine can only make the gap longer.
    assert retry.received_at - first.received_at >= retry_after
    assert elapsed >= retry_after
    row = await adb(RunUsage.objects.get, run_id=response.json()["run_id"])
    assert (row.status, row.retries, row.backoff_seconds) == ("completed", 1, retry_after)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_a_client_error_from_the_provider_is_not_retried(api, alice, provider, status):
    """Guards against retrying 400/401/403/404/413/422 (e.g. adding them to
    chat/agents/retry.py RETRYABLE_STATUS): the same request gets the same answer, so a retry only adds
    cost and delay. Here a retry would even succeed (the next call is answered normally), so the
    run would complete: the run must end at the first call instead.
    """
    provider.enqueue(Behaviour.http_error(status))
    response, _ = await _run(api, alice)

    assert response.status_code == 502, response.text[:500]
    body = response.json()
    assert body["error_type"] == "provider_error" and "fake provider" not in body["detail"]
    assert await provider.wait_idle(30.0)
    assert provider.total_requests == 1
    assert [r.outcome for r in provider.requests] == [Outcome.HTTP_ERROR]
    row = await adb(RunUsage.objects.get, run_id=body["run_id"])
    assert (row.status, row.error_type) == ("error", "provider_error")
    assert (row.retries, row.backoff_seconds, row.model_calls, row.member_runs) == (0, 0, 0, 0)
    assert "fake provider" in row.error_message  # staff can see the provider's reason


async def test_a_retry_after_longer_than_the_time_left_ends_the_run_at_once(api, alice, provider, settings):
    """Guards against letting a retry sleep past the run's deadline: comparing the Retry-After with
    the whole deadline instead of the time left, clamping the sleep to the time left, or dropping
    the check. The run would sleep into its deadline and end `timed_out` (504) instead of telling
    the client at once that the provider is rate limiting (429 with the provider's Retry-After).

    The leader's first call takes SLOW s, so when the final call gets the 429 less than
    DEADLINE - SLOW s are left: shorter than RETRY_AFTER, although RETRY_AFTER < DEADLINE.
    """
    slow, deadline, retry_after = 3.0, 8.0, 6.0
    settings.CIRKELLINE_RUN_TIMEOUT = deadline
    # leader (delegates, slowly), member (answers), leader's final answer (rate limited)
    provider.enqueue(Behaviour(ttft=slow), Behaviour(), Behaviour.rate_limited(retry_after=retry_after))
    response, _ = await _run(api, alice)
    ended = asyncio.get_running_loop().time()

    assert response.status_code == 429, response.text[:500]
    assert response.json()["error_type"] == "rate_limited"
    assert response.headers["Retry-After"] == str(int(retry_after))  # the provider's, passed on
    assert await provider.wait_idle(30.0)
    assert provider.total_requests == 3  # no retry was sent
    rate_limited = provider.requests[2]
    assert rate_limited.outcome == Outcome.HTTP_ERROR
    # It ended long before the retry would even have been allowed (a fraction of Retry-After),
    # and before its deadline (which would have made it a 504).
    assert (ended - rate_limited.received_at) / retry_after < 0.5
    row = await adb(RunUsage.objects.get, run_id=response.json()["run_id"])
    assert (row.status, row.error_type) == ("rate_limited", "rate_limited")
    assert (row.retries, row.backoff_seconds) == (0, 0)
    assert row.duration_ms >= slow * 1000  # the slow first call really happened
