"""A provider call cut off mid-stream is billed for what it consumed, marked as estimated.

Providers report a streamed call's usage in its last chunk, so a call that is cancelled or breaks
mid-answer never reports any. These tests go through agno's real OpenAILike client against the
loopback fake provider: the prompt the provider received is known (its request log), and so is
the text it streamed. The run's tokens for such a call are counted locally
(`chat.agents.token_estimate`) and its ledger row says so.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from chat.agents.token_estimate import text_tokens
from chat.runs import RunRequest, start_run, teams
from metrics.models import ModelCall, PriceRule, Pricing, RunStatus, RunUsage
from tests.conftest import adb
from tests.doubles.fake_openai import Behaviour, FakeProvider, Fault, Outcome, prompt_tokens

pytestmark = pytest.mark.django_db(transaction=True)

LONG_ANSWER = " ".join(f"word{i}" for i in range(400))
INPUT, OUTPUT = Decimal("1.25"), Decimal("10")
MILLION = Decimal(1_000_000)


@pytest.fixture
def provider(settings):
    with FakeProvider(answer_words=12, tokens_per_second=400, keep_alive=False) as fake:
        settings.CIRKELLINE_MODEL = "openai-like:fake"
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        settings.CIRKELLINE_RETRY_DELAY = 0.01
        teams.prototype.cache_clear()
        yield fake


@pytest.fixture
def price_rule(db):
    return PriceRule.objects.create(provider="openai-like", model_pattern="fake", input_per_million=INPUT,
                                    output_per_million=OUTPUT, effective_from=timezone.now() - timedelta(days=1))


def _ledger(run_id: str) -> list[ModelCall]:
    return list(ModelCall.objects.filter(run_id=run_id))


async def _streamed_text(handle, *, until_chars: int) -> str:
    """The leader's streamed text, read until at least `until_chars` characters have arrived."""
    text = ""
    async for event in handle.events():
        if event.event == "TeamRunContent" and isinstance(event.content, str):
            text += event.content
            if len(text) >= until_chars:
                return text
    raise AssertionError(f"the run ended after {len(text)} characters")


async def test_a_call_cancelled_mid_stream_is_billed_for_its_prompt_and_what_it_streamed(alice, provider,
                                                                                         price_rule):
    """Guards against a cancelled run being free: its one provider call reported no usage (it never
    reached its last chunk), and was billed 0 tokens, cost 0, 0 model calls."""
    provider.set_default(Behaviour.say(LONG_ANSWER, tokens_per_second=200))
    handle = await start_run(RunRequest(user_id=alice.pk, message="Tell me a long story"))
    streamed = await _streamed_text(handle, until_chars=len(LONG_ANSWER) // 2)
    assert handle.abort(RunStatus.CANCELLED)
    result = await handle.wait()
    assert result.status == RunStatus.CANCELLED

    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    [request] = provider.requests
    assert request.outcome == Outcome.CLIENT_CLOSED  # cut off: the provider never sent its usage
    assert row.model_calls == 1
    # The prompt as the provider received it: at least its text (the fake's count covers message
    # text only; ours adds the tool schemas and per-message framing), and not wildly more.
    assert prompt_tokens(request.messages) <= row.input_tokens <= 2 * prompt_tokens(request.messages) + 400
    # What reached the client, at least; a few more deltas may have been read before the cancel landed.
    assert row.output_tokens >= text_tokens(streamed) > 0
    assert row.output_tokens <= text_tokens(LONG_ANSWER)
    assert row.total_tokens == row.input_tokens + row.output_tokens == row.estimated_tokens
    assert row.pricing == Pricing.PRICED
    assert row.cost == (row.input_tokens * INPUT + row.output_tokens * OUTPUT) / MILLION > 0
    [call] = await adb(_ledger, handle.run_id)
    assert (call.calls, call.estimated, call.estimated_tokens) == (1, True, row.total_tokens)
    assert call.cost == row.cost


async def test_a_call_retried_after_breaking_mid_stream_bills_both_attempts(alice, provider, price_rule):
    """Guards against billing only the attempt that answered (1 of 2 provider calls): the broken
    attempt had the whole prompt and streamed part of an answer."""
    provider.enqueue(Behaviour.say(LONG_ANSWER, fault=Fault.RESET, fault_after=40),
                     Behaviour.say("The answer, at last."))
    handle = await start_run(RunRequest(user_id=alice.pk, message="Hello there"))
    [event async for event in handle.events()]
    result = await handle.wait()
    assert result.status == RunStatus.COMPLETED

    first, second = provider.requests
    assert (first.outcome, second.outcome) == (Outcome.RESET, Outcome.COMPLETED)
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    assert (row.retries, row.model_calls) == (1, 2)
    answered = prompt_tokens(second.messages)  # the fake reports this for the call that answered
    assert row.input_tokens >= answered + prompt_tokens(first.messages)
    assert 0 < row.estimated_tokens < row.total_tokens  # the broken attempt only
    [call] = await adb(_ledger, handle.run_id)
    assert (call.calls, call.estimated) == (2, True)
    assert call.estimated_tokens == row.estimated_tokens
    exact = (row.input_tokens * INPUT + row.output_tokens * OUTPUT) / MILLION
    assert row.cost == call.cost == exact


async def test_a_call_that_completes_is_not_estimated(alice, provider, price_rule):
    """The measured case stays measured: no estimate is added to a call whose usage was reported."""
    provider.set_default(Behaviour.say("A short answer."))
    handle = await start_run(RunRequest(user_id=alice.pk, message="Hello there"))
    [event async for event in handle.events()]
    await handle.wait()
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    [request] = provider.requests
    assert row.input_tokens == prompt_tokens(request.messages)
    assert row.estimated_tokens == 0
    [call] = await adb(_ledger, handle.run_id)
    assert (call.calls, call.estimated, call.estimated_tokens) == (1, False, 0)


async def test_a_run_cancelled_before_the_provider_answers_is_billed_for_its_prompt(alice, provider, price_rule):
    """The request was sent: the provider has the prompt, whether or not it started answering."""
    provider.set_default(Behaviour.say("Too late.", header_delay=30))
    handle = await start_run(RunRequest(user_id=alice.pk, message="Hello there"))
    assert await provider.wait_until(lambda p: p.active_requests == 1, 10)
    await asyncio.sleep(0)
    assert handle.abort(RunStatus.CANCELLED)
    await handle.wait()
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    assert row.model_calls == 1 and row.output_tokens == 0
    assert row.input_tokens >= prompt_tokens(provider.requests[0].messages) > 0
    assert row.estimated_tokens == row.total_tokens and row.cost > 0
