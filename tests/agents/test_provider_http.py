"""The provider clients' HTTP transports (CIRKELLINE_PROVIDER_HTTP): aiohttp, the default, gives
the lean path the same deltas and the same agno errors as httpx, and a loop's clients close with it.

Each case of the fake provider (text, a tool call, a malformed chunk, a reset, a stall, HTTP
errors with and without Retry-After) is served live, over loopback, to the product's lean model
once per transport; both must give equal deltas (ids and timestamps aside: each call is a new
answer) and the same error as the retry layer reads it. The connection tests guard the shared
clients' lifetime (chat.agents.agno_overrides): a client's connections are closed when its event
loop shuts down, or when the loop's clients are closed on purpose (a draining server).
"""

from __future__ import annotations

import asyncio

import pytest
from agno.exceptions import ModelProviderError
from agno.models.message import Message

from chat.agents.agno_overrides import close_loop_clients
from chat.agents.providers import ModelSpec, build_model
from chat.agents.retry import classify_failure
from tests.agents.test_openai_lean import FAKE_CASES, LEADER, TOOLS, _normal
from tests.doubles.fake_openai import FakeProvider

TRANSPORTS = {"aiohttp": "AiohttpTransport", "httpx": "AsyncHTTPTransport"}
# What differs between two answers to the same request: the provider's ids (tool call ids too:
# only whether there is one is compared) and clocks.
PER_ANSWER = ("id", "created_at", "provider_data")


@pytest.fixture
def live_settings(settings):
    settings.CIRKELLINE_MODEL_CLIENT = "lean"
    settings.CIRKELLINE_PROVIDER_CLIENTS = 1
    settings.CIRKELLINE_MAX_RETRIES = 0  # one call: the error itself is compared
    settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 5.0
    settings.CIRKELLINE_STREAM_IDLE_TIMEOUT = 0.5  # the stalled stream's case
    return settings


def _model(settings, provider: FakeProvider, transport: str):
    settings.CIRKELLINE_PROVIDER_HTTP = transport
    settings.CIRKELLINE_MODEL_BASE_URL = provider.base_url
    return build_model("leader", ModelSpec("openai-like", "fake"))


async def _call(settings, provider: FakeProvider, transport: str, behaviour, messages) -> dict:
    await close_loop_clients()  # a new client, with this transport
    model = _model(settings, provider, transport)
    provider.enqueue(behaviour)
    deltas, error = [], None
    try:
        async for delta in model.ainvoke_stream(messages=list(messages), assistant_message=Message(role="assistant"),
                                                tools=TOOLS):
            data = {k: v for k, v in _normal(delta).items() if k not in PER_ANSWER}
            data["tool_calls"] = [{**call, "id": bool(call["id"])} for call in data["tool_calls"]]
            deltas.append(data)
    except ModelProviderError as exc:
        failure = classify_failure(exc)
        error = (type(exc).__name__, exc.status_code, failure.message, failure.retry_after)
    transport_used = type(model.get_async_client()._client._transport).__name__
    return {"deltas": deltas, "error": error, "transport": transport_used}


@pytest.mark.parametrize("name", list(FAKE_CASES))
async def test_both_transports_give_the_same_deltas_and_errors(live_settings, name):
    behaviour, messages = FAKE_CASES[name]
    async with FakeProvider(chunk_words=2, answer_words=12) as provider:
        seen = {t: await _call(live_settings, provider, t, behaviour, messages) for t in TRANSPORTS}
    for transport, class_name in TRANSPORTS.items():
        assert seen[transport]["transport"] == class_name
    assert seen["aiohttp"]["deltas"] == seen["httpx"]["deltas"]
    assert seen["aiohttp"]["error"] == seen["httpx"]["error"]
    if name in ("text", "tool call"):
        assert seen["aiohttp"]["deltas"] and seen["aiohttp"]["error"] is None
    if name.startswith(("429", "500", "reset", "stalled", "malformed")):
        assert seen["aiohttp"]["error"] is not None


async def test_a_loops_clients_close_their_connections_when_the_loop_ends(live_settings):
    """A loop that ends (asyncio.run, asgiref's async_to_sync, a test's loop) closes the provider
    connections its clients opened; without it they stay open until the process exits."""
    async with FakeProvider(answer_words=4) as provider:
        async def one_call() -> str:
            model = _model(live_settings, provider, "aiohttp")
            deltas = [d async for d in model.ainvoke_stream(messages=list(LEADER),
                                                            assistant_message=Message(role="assistant"))]
            return "".join(d.content or "" for d in deltas)

        answer = await asyncio.to_thread(asyncio.run, one_call())  # its own loop, which then ends
        assert answer
        assert await provider.wait_until(lambda p: p.open_connections == 0, 5.0), provider.open_connections


async def test_closing_a_loops_clients_closes_their_connections_and_the_next_call_opens_new_ones(live_settings):
    async with FakeProvider(answer_words=4) as provider:
        for _ in range(2):
            model = _model(live_settings, provider, "aiohttp")
            assert [d async for d in model.ainvoke_stream(messages=list(LEADER),
                                                          assistant_message=Message(role="assistant"))]
            assert await provider.wait_until(lambda p: p.active_requests == 0, 5.0)
            assert provider.open_connections == 1  # kept alive for the next call
            await close_loop_clients()
            assert await provider.wait_until(lambda p: p.open_connections == 0, 5.0), provider.open_connections
