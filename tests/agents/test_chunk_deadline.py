"""The deadlines of a provider stream's waits (chat.agents.chunk_deadline under the retry layer).

Against the fake provider, through the product's lean model: a call that sends nothing before
the first-token deadline fails as timed out; a stream that goes quiet mid-answer fails at the
idle deadline, not the first-token one; a slow consumer never times out, since only the wait in
`anext` counts; a cancel from outside stays a cancel. On a scripted stream (no I/O, exact
interleavings): chunks that keep arriving push the deadline; a timeout leaves no stray cancel on
the task; a cancel from outside that lands with the deadline's own is not turned into a timeout.

Times are asserted as bounds and ratios (the deadline's own lower bound, and far less than the
longer deadline or the provider's delay), never as exact durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from agno.exceptions import ModelProviderError
from agno.models.message import Message
from agno.models.response import ModelResponse

from chat.agents.providers import ModelSpec, build_model
from chat.agents.retry import ResilientModel
from chat.observability import hooks
from tests.agents.test_openai_lean import LEADER
from tests.doubles.fake_openai import Behaviour, FakeProvider

MID_ANSWER = "The provider stopped sending mid-answer"


@pytest.fixture
def deadlines(settings):
    """One attempt per call (the error itself is asserted), the lean model's path."""
    settings.CIRKELLINE_MODEL_CLIENT = "lean"
    settings.CIRKELLINE_PROVIDER_CLIENTS = 1
    settings.CIRKELLINE_MAX_RETRIES = 0
    return settings


@pytest.fixture
def call_ends(monkeypatch) -> list[dict]:
    """How each provider call attempt ended, as the retry layer reports it (timed_out=True: counted
    as a timed-out call)."""
    seen: list[dict] = []
    monkeypatch.setattr(hooks, "provider_call_ended",
                        lambda status_code=None, *, ok=False, timed_out=False: seen.append(
                            {"status": status_code, "ok": ok, "timed_out": timed_out}))
    return seen


def _model(settings, provider: FakeProvider):
    settings.CIRKELLINE_MODEL_BASE_URL = provider.base_url
    return build_model("leader", ModelSpec("openai-like", "fake"))


async def _stream(model, *, on_delta: Callable[[], object] | None = None) -> tuple[list, BaseException | None, float]:
    """The deltas of one streamed call, the error that ended it, and when (event-loop clock) the
    last delta or the error came, relative to the call's start or to the last delta."""
    loop = asyncio.get_running_loop()
    deltas: list = []
    started = last = loop.time()
    error: BaseException | None = None
    try:
        async for delta in model.ainvoke_stream(messages=list(LEADER), assistant_message=Message(role="assistant")):
            deltas.append(delta)
            last = loop.time()
            if on_delta is not None:
                await on_delta()
    except ModelProviderError as exc:
        error = exc
    return deltas, error, (loop.time() - last if deltas else loop.time() - started)


def _text(deltas) -> str:
    return "".join(getattr(d, "content", None) or "" for d in deltas)


async def test_a_call_that_sends_nothing_times_out_at_the_first_token_deadline(deadlines, call_ends):
    """Guards against the first wait getting no deadline, the idle one, or a timer that never
    fires: the provider holds its headers back for 30 s, the first-token deadline is 0.3 s."""
    first_token, held = 0.3, 30.0
    deadlines.CIRKELLINE_FIRST_TOKEN_TIMEOUT = first_token
    deadlines.CIRKELLINE_STREAM_IDLE_TIMEOUT = 0.05  # a first wait on this one would end far sooner
    async with FakeProvider(answer_words=6) as provider:
        provider.enqueue(Behaviour.slow_first_byte(held))
        deltas, error, waited = await _stream(_model(deadlines, provider))
        assert await provider.wait_idle(5.0), "the provider's connection stayed open"

    assert deltas == []
    assert isinstance(error, ModelProviderError) and error.first_token_deadline is True
    assert error.status_code == 504
    assert first_token <= waited < held / 10
    assert call_ends == [{"status": None, "ok": False, "timed_out": True}]  # counted as timed out, once
    assert asyncio.current_task().cancelling() == 0  # the deadline's cancel was taken back


async def test_a_stream_that_goes_quiet_mid_answer_fails_at_the_idle_deadline(deadlines, call_ends):
    """Guards against the idle deadline not replacing the longer first-token one once the call has
    started answering (a timer left armed for the first-token deadline would end the wait only
    after it: 10 s) and against a quiet stream being reported as a first-token timeout."""
    first_token, idle = 10.0, 0.3
    deadlines.CIRKELLINE_FIRST_TOKEN_TIMEOUT = first_token
    deadlines.CIRKELLINE_STREAM_IDLE_TIMEOUT = idle
    async with FakeProvider(answer_words=12) as provider:
        provider.enqueue(Behaviour.stall(after=3))
        deltas, error, quiet = await _stream(_model(deadlines, provider))
        assert await provider.wait_idle(5.0), "the provider's connection stayed open"

    assert _text(deltas)  # it had started answering
    assert isinstance(error, ModelProviderError) and str(error.message) == MID_ANSWER
    assert not getattr(error, "first_token_deadline", False)
    assert idle <= quiet < first_token / 4
    assert not any(end["timed_out"] for end in call_ends)  # a failed call, not a timed-out one


async def test_a_consumer_slower_than_the_idle_deadline_does_not_time_out(deadlines, call_ends):
    """Guards against counting the consumer's time between chunks (the generator suspended at its
    `yield`) as the provider's: a deadline measured from when a chunk was handed out, or left
    running while the consumer holds it, would end this call at its first slow chunk, or cancel
    the consumer itself."""
    idle = 0.1
    deadlines.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 5.0
    deadlines.CIRKELLINE_STREAM_IDLE_TIMEOUT = idle
    async with FakeProvider(answer_words=6, chunk_words=2) as provider:  # no pacing: a fast provider
        provider.enqueue(Behaviour.say("Copenhagen began as a Viking fishing village"))

        async def slow_consumer() -> None:  # the scenario itself, not a synchronisation
            await asyncio.sleep(idle * 2.5)

        deltas, error, _ = await _stream(_model(deadlines, provider), on_delta=slow_consumer)

    assert error is None
    assert _text(deltas) == "Copenhagen began as a Viking fishing village"
    assert len([d for d in deltas if d.content]) >= 3  # several chunks, each held longer than the idle deadline
    assert call_ends == [{"status": None, "ok": True, "timed_out": False}]


async def test_a_cancel_from_outside_during_a_wait_propagates_as_a_cancel(deadlines, call_ends):
    """Guards against a cancel of the run (its user's, its own deadline's) during a wait being
    turned into a provider timeout, or being taken back: the consumer must see CancelledError,
    with its task's cancel request still counted."""
    deadlines.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 10.0
    deadlines.CIRKELLINE_STREAM_IDLE_TIMEOUT = 10.0
    seen: dict = {}
    async with FakeProvider(answer_words=6) as provider:
        provider.enqueue(Behaviour.slow_first_byte(30.0))
        model = _model(deadlines, provider)

        async def consume() -> None:
            try:
                await _stream(model)
            except asyncio.CancelledError:
                seen["cancelling"] = asyncio.current_task().cancelling()
                raise

        task = asyncio.create_task(consume())
        assert await provider.wait_until(lambda p: p.active_requests == 1, 5.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await provider.wait_idle(5.0), "the provider's connection stayed open"

    assert task.cancelled()
    assert seen == {"cancelling": 1}
    assert not any(end["timed_out"] for end in call_ends)


# -- on a scripted stream: exact interleavings, no I/O ---------------------------------------------


class _Scripted:
    """Stands in for the provider model under the retry layer: each call streams `script()`."""

    id = "scripted"
    provider = "test"

    def __init__(self, script: Callable[[], AsyncIterator]) -> None:
        self.script = script

    async def ainvoke_stream(self, *args, **kwargs) -> AsyncIterator:
        async for delta in self.script():
            yield delta


class _ScriptedModel(ResilientModel, _Scripted):
    max_attempts_override = 1


async def _collect(script: Callable[[], AsyncIterator]) -> list:
    return [delta async for delta in _ScriptedModel(script).ainvoke_stream(messages=[])]


async def test_each_chunk_that_arrives_before_the_deadline_pushes_it(settings, call_ends):
    """Guards against a deadline that is not pushed by each chunk (a timer left armed for the first
    wait's deadline, or one that fires without looking at the wait in progress): chunks come every
    0.3 x the idle deadline, the whole answer takes 2.4 x it, and no wait reaches it."""
    idle, chunks = 0.5, 8
    settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = idle
    settings.CIRKELLINE_STREAM_IDLE_TIMEOUT = idle

    async def steady() -> AsyncIterator:
        for index in range(chunks):
            await asyncio.sleep(idle * 0.3)  # the provider's pace
            yield ModelResponse(content=f"w{index} ")

    loop = asyncio.get_running_loop()
    started = loop.time()
    deltas = await _collect(steady)
    assert _text(deltas) == "".join(f"w{index} " for index in range(chunks))
    assert loop.time() - started >= idle * 2  # the first deadline would have ended it long before
    assert call_ends == [{"status": None, "ok": True, "timed_out": False}]


async def test_a_timeout_leaves_no_cancel_behind_on_the_task(settings, call_ends):
    """Guards against the deadline's cancel leaking into the consumer: after the timeout its task
    has no cancel request left, and its next await is not interrupted."""
    settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 0.05

    async def silent() -> AsyncIterator:
        await asyncio.get_running_loop().create_future()  # never answers
        yield ModelResponse(content="never")

    with pytest.raises(ModelProviderError) as caught:
        await _collect(silent)
    assert caught.value.first_token_deadline is True
    assert asyncio.current_task().cancelling() == 0
    await asyncio.sleep(0)  # a stray cancel would be delivered here
    assert call_ends == [{"status": None, "ok": False, "timed_out": True}]


async def test_a_cancel_from_outside_that_lands_with_the_deadline_stays_a_cancel(settings, call_ends):
    """Guards against turning every cancel of an expired wait into the timeout: here the run is
    cancelled in the very loop iteration the deadline fires (the provider's future's callback
    cancels the run as the deadline's cancel reaches it), so both cancels are pending when the wait
    ends. The run's cancel must win: CancelledError, one cancel request left on the task."""
    settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 0.05
    seen: dict = {}

    async def silent_until_cancelled() -> AsyncIterator:
        waiting = asyncio.get_running_loop().create_future()
        run = asyncio.current_task()
        waiting.add_done_callback(lambda _: run.cancel())  # the user cancels, right as the deadline fires
        await waiting
        yield ModelResponse(content="never")

    async def consume() -> None:
        try:
            await _collect(silent_until_cancelled)
        except asyncio.CancelledError:
            seen["cancelling"] = asyncio.current_task().cancelling()
            raise

    task = asyncio.create_task(consume())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == {"cancelling": 1}
    assert not any(end["timed_out"] for end in call_ends)
