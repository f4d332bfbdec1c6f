"""The loopback fake OpenAI provider (tests/doubles/fake_openai), seen through real clients.

The fake stands in for a model provider in tests and benchmarks, so what matters is what
the real ``openai`` SDK and agno observe on the wire: OpenAI's chunk and error formats, the
auto script a team leader and its members meet, each scripted fault, and counters that
prove every connection and request really ends. No Django database is involved.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.doubles.fake_openai import (
    Behaviour,
    FakeProvider,
    Fault,
    Outcome,
    compose_answer,
    first_member_id,
    prompt_tokens,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# What an agno leader's request looks like: its roster in the system message, the
# delegation tool in the tools list.
ROSTER = (
    "<team>\nYou coordinate this team.\n<team_members>\n"
    '<member id="research-specialist" name="Research Specialist">\n  Role: finds facts\n</member>\n'
    '<member id="writer" name="Writer">\n  Role: writes\n</member>\n'
    "</team_members>\n</team>"
)
DELEGATE = {
    "type": "function",
    "function": {
        "name": "delegate_task_to_member",
        "description": "Delegate a task to a member.",
        "parameters": {
            "type": "object",
            "properties": {"member_id": {"type": "string"}, "task": {"type": "string"}},
            "required": ["member_id", "task"],
        },
    },
}
LEADER_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": ROSTER},
    {"role": "user", "content": "Research solar panels"},
]
USER_ONLY: list[dict[str, Any]] = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
async def client(provider: FakeProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=provider.base_url, api_key="x", max_retries=0) as sdk:
        yield sdk


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


async def collect(stream: openai.AsyncStream[Any]) -> list[Any]:
    return [chunk async for chunk in stream]


def content_of(chunks: list[Any]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


# --- text answers and the wire format -------------------------------------------------------


async def test_a_stream_has_a_role_delta_content_deltas_a_finish_chunk_and_a_usage_chunk(provider, client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about otters"}]

    stream = await client.chat.completions.create(
        model="fake", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = await collect(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = content_of(chunks)
    text = "".join(pieces)
    filler = " ".join(f"tok{i}" for i in range(1, 25))  # 30 words - "Answer to:" - 4 seed words
    assert text == f"Answer to: Tell me about otters {filler}"
    assert len(text.split()) == 30 and len(pieces) == 30  # one word per delta by default
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (tokens("Be brief.Tell me about otters"), tokens(text))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"

    assert await provider.wait_until(lambda p: p.active_requests == 0, 10.0)  # the outcome is set after the send
    [recorded] = provider.requests
    assert recorded.stream and recorded.include_usage and recorded.messages == messages
    assert recorded.outcome is Outcome.COMPLETED


async def test_raw_sse_frames_end_with_done_and_carry_no_usage_unless_asked(provider):
    async with httpx.AsyncClient(base_url=provider.base_url) as raw:
        response = await raw.post("/chat/completions", json={"model": "fake", "messages": USER_ONLY, "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[-1] == "" and frames[-2] == "data: [DONE]"
    chunks = [json.loads(frame.removeprefix("data: ")) for frame in frames[:-2]]
    assert all(frame.startswith("data: {") for frame in frames[:-2])
    assert all("usage" not in chunk and len(chunk["choices"]) == 1 for chunk in chunks)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


async def test_a_non_streamed_call_returns_one_chat_completion_with_usage(provider, client):
    completion = await client.chat.completions.create(model="fake", messages=USER_ONLY)

    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert choice.message.content == compose_answer("Answer to:", "hello there", 30)
    assert completion.usage.prompt_tokens == tokens("hello there")
    assert completion.usage.completion_tokens == tokens(choice.message.content)
    assert provider.requests[0].stream is False


async def test_answer_length_and_delta_size_follow_the_knobs(provider, client):
    provider.enqueue(Behaviour(answer_words=8, chunk_words=3))

    chunks = await collect(await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True))

    assert content_of(chunks) == ["Answer to: hello", " there tok1 tok2", " tok3 tok4"]


# --- the auto script a team meets -----------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_a_leader_request_is_answered_with_a_delegation_to_the_first_member(provider, client, stream):
    if stream:
        chunks = await collect(
            await client.chat.completions.create(model="fake", messages=LEADER_MESSAGES, tools=[DELEGATE], stream=True)
        )
        calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
        head, pieces = calls[0], calls[1:]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert head.id and head.type == "function" and head.function.name == "delegate_task_to_member"
        assert len(pieces) > 1, "arguments arrive in several pieces"
        arguments = "".join(p.function.arguments for p in pieces)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == ["tool_calls"]
    else:
        completion = await client.chat.completions.create(model="fake", messages=LEADER_MESSAGES, tools=[DELEGATE])
        assert completion.choices[0].finish_reason == "tool_calls"
        assert completion.choices[0].message.content is None
        [call] = completion.choices[0].message.tool_calls
        assert call.function.name == "delegate_task_to_member"
        arguments = call.function.arguments

    assert json.loads(arguments) == {"member_id": "research-specialist", "task": "Research solar panels"}
    assert provider.requests[0].tool_names == ["delegate_task_to_member"]


async def test_a_leader_with_tool_results_answers_in_text_quoting_them(client):
    messages = [
        *LEADER_MESSAGES,
        {"role": "assistant", "content": "", "tool_calls": [_call("c1", '{"member_id": "writer"}')]},
        {"role": "tool", "tool_call_id": "c1", "content": "Panels convert sunlight"},
    ]

    completion = await client.chat.completions.create(model="fake", messages=messages, tools=[DELEGATE])

    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content.startswith("Summary of results: Panels convert sunlight tok1")
    expected_chars = len(ROSTER) + len("Research solar panels") + len("delegate_task_to_member")
    expected_chars += len('{"member_id": "writer"}') + len("Panels convert sunlight")
    assert completion.usage.prompt_tokens == math.ceil(expected_chars / 4)


def _call(call_id: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "delegate_task_to_member", "arguments": arguments}}


@pytest.mark.parametrize(
    ("behaviour", "member_id", "task"),
    [
        (Behaviour.unknown_member(), "no-such-member", "Research solar panels"),
        (Behaviour.empty_task(), "research-specialist", ""),
    ],
)
async def test_scripted_delegations_to_an_unknown_member_or_with_an_empty_task(
    provider, client, behaviour, member_id, task
):
    provider.enqueue(behaviour)

    completion = await client.chat.completions.create(model="fake", messages=LEADER_MESSAGES, tools=[DELEGATE])

    arguments = json.loads(completion.choices[0].message.tool_calls[0].function.arguments)
    assert arguments == {"member_id": member_id, "task": task}


async def test_a_configured_member_id_wins_over_the_roster():
    async with FakeProvider(member_id="writer") as fake:
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as sdk:
            completion = await sdk.chat.completions.create(model="fake", messages=LEADER_MESSAGES, tools=[DELEGATE])
    assert json.loads(completion.choices[0].message.tool_calls[0].function.arguments)["member_id"] == "writer"


async def test_forced_text_and_forced_tool_calls(provider, client):
    provider.enqueue(Behaviour.say("Exactly this."), Behaviour.call_tool("lookup", {"q": "otters"}))

    said = await client.chat.completions.create(model="fake", messages=LEADER_MESSAGES, tools=[DELEGATE])
    called = await client.chat.completions.create(model="fake", messages=USER_ONLY)

    assert said.choices[0].message.content == "Exactly this." and said.choices[0].finish_reason == "stop"
    [call] = called.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"q": "otters"})


async def test_the_queue_is_consumed_one_behaviour_per_request_then_the_default_applies(provider, client):
    first, second = Behaviour.say("one"), Behaviour.say("two")
    provider.enqueue(first, second)
    provider.set_default(Behaviour.say("default"))

    answers = [
        (await client.chat.completions.create(model="fake", messages=USER_ONLY)).choices[0].message.content
        for _ in range(3)
    ]

    assert answers == ["one", "two", "default"]
    assert [r.behaviour for r in provider.requests][:2] == [first, second]
    assert provider.pending_behaviours == 0 and provider.total_requests == 3


# --- HTTP faults ------------------------------------------------------------------------------


async def test_429_carries_retry_after_to_the_client(provider, client):
    provider.enqueue(Behaviour.rate_limited(retry_after=7))

    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.json()["error"]["code"] == "rate_limit_exceeded"
    assert await provider.wait_until(lambda p: p.active_requests == 0, 10.0)
    assert provider.requests[0].outcome is Outcome.HTTP_ERROR


async def test_429_without_retry_after(provider, client):
    provider.enqueue(Behaviour.rate_limited(retry_after=None))

    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="fake", messages=USER_ONLY)

    assert "retry-after" not in caught.value.response.headers


@pytest.mark.parametrize(
    ("status", "error_type"), [(500, "server_error"), (503, "server_error"), (529, "overloaded_error")]
)
async def test_server_errors_have_an_openai_error_body(provider, client, status, error_type):
    provider.enqueue(Behaviour.http_error(status))

    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)

    assert caught.value.status_code == status
    error = caught.value.response.json()["error"]
    assert error["type"] == error_type and "fake provider" in error["message"]
    # The connection survives an error response: the next call on it succeeds.
    completion = await client.chat.completions.create(model="fake", messages=USER_ONLY)
    assert completion.choices[0].finish_reason == "stop"
    assert provider.open_connections == 1


@pytest.mark.parametrize(
    ("status", "sdk_error"),
    [(400, openai.BadRequestError), (401, openai.AuthenticationError), (403, openai.PermissionDeniedError),
     (404, openai.NotFoundError), (413, openai.APIStatusError), (422, openai.UnprocessableEntityError)],
)
async def test_client_errors_reach_the_sdk_as_their_own_status(provider, client, status, sdk_error):
    provider.enqueue(Behaviour.http_error(status))

    with pytest.raises(sdk_error) as caught:
        await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)

    assert caught.value.status_code == status
    assert "fake provider" in caught.value.response.json()["error"]["message"]
    assert await provider.wait_until(lambda p: p.active_requests == 0, 10.0)  # the outcome is set after the send
    assert [r.outcome for r in provider.requests] == [Outcome.HTTP_ERROR]


# --- stream faults ------------------------------------------------------------------------------


async def test_a_reset_mid_stream_raises_in_the_client_and_the_counters_return_to_zero(provider, client):
    provider.enqueue(Behaviour.reset(after=3))
    received: list[Any] = []

    stream = await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)

    assert "".join(content_of(received)) == "Answer to: hello", "three deltas went out before the reset"
    assert await provider.wait_idle(10.0)
    assert provider.requests[0].outcome is Outcome.RESET


async def test_a_stalled_stream_ends_on_the_server_as_soon_as_the_client_gives_up(provider, client):
    provider.enqueue(Behaviour.stall(after=2))
    stream = await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)
    chunks = aiter(stream)
    received = [await anext(chunks) for _ in range(3)]  # role, then two content deltas
    assert "".join(content_of(received)) == "Answer to:"
    assert (provider.active_requests, provider.open_connections) == (1, 1), "the stall holds the request open"

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(chunks), 0.2)
    await stream.close()

    assert await provider.wait_idle(10.0)  # a stall never ends by itself: only the hang-up ends it
    assert provider.requests[0].outcome is Outcome.CLIENT_CLOSED


async def test_a_malformed_chunk_surfaces_as_an_error_in_the_client(provider, client):
    provider.enqueue(Behaviour.malformed_chunk(after=2))
    received: list[Any] = []

    stream = await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)
    with pytest.raises(json.JSONDecodeError):
        async for chunk in stream:
            received.append(chunk)

    assert "".join(content_of(received)) == "Answer to:"
    await client.close()
    assert await provider.wait_idle(10.0)


# --- timing ---------------------------------------------------------------------------------------


async def test_ttft_holds_back_the_first_delta_but_not_the_headers_and_deltas_are_paced(provider, client):
    provider.enqueue(Behaviour(ttft=0.3, tokens_per_second=40, answer_words=9))
    start = time.monotonic()

    stream = await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)
    headers_at = time.monotonic() - start
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)

    assert headers_at < arrivals[0]
    assert arrivals[0] >= 0.29
    assert len(arrivals) == 9 and arrivals[-1] - arrivals[0] >= 8 / 40 - 0.01


async def test_latency_delays_a_non_streamed_answer_and_a_slow_first_byte_delays_the_headers(provider, client):
    provider.enqueue(Behaviour(latency=0.2), Behaviour.slow_first_byte(0.25))

    start = time.monotonic()
    await client.chat.completions.create(model="fake", messages=USER_ONLY)
    answered = time.monotonic() - start
    start = time.monotonic()
    stream = await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)
    headers = time.monotonic() - start
    await collect(stream)

    assert answered >= 0.19
    assert headers >= 0.24


async def test_a_client_leaving_during_ttft_ends_the_request_at_once(provider, client):
    provider.enqueue(Behaviour(ttft=30))
    stream = await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)
    assert provider.active_requests == 1

    await stream.close()

    assert await provider.wait_idle(10.0)
    assert provider.requests[0].outcome is Outcome.CLIENT_CLOSED


async def test_a_reset_is_a_tcp_rst_not_a_clean_close(provider):
    """Guards against a "reset" that only closes the connection (FIN), which is all an ASGI
    app can do by itself: a client then sees a clean end of file, not ECONNRESET."""
    provider.enqueue(Behaviour.reset(after=2))
    reader, writer = await asyncio.open_connection("127.0.0.1", provider.port)
    received = b""
    try:
        body = json.dumps({"model": "fake", "messages": USER_ONLY, "stream": True}).encode()
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        with pytest.raises(ConnectionResetError):
            while chunk := await reader.read(65536):
                received += chunk
    finally:
        writer.close()

    assert b"Answer to:" in _dechunk_partial(received.partition(b"\r\n\r\n")[2]), "two deltas came first"
    assert await provider.wait_idle(10.0)
    assert provider.requests[0].outcome is Outcome.RESET


def _dechunk_partial(data: bytes) -> bytes:
    """The content of the complete chunks of a cut-off chunked body."""
    body = b""
    while b"\r\n" in data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0 or len(rest) < size + 2:
            break
        body, data = body + rest[:size], rest[size + 2 :]
    return b"".join(json.loads(line.removeprefix(b"data: "))["choices"][0]["delta"].get("content", "").encode()
                    for line in body.split(b"\n\n") if line.startswith(b"data: {"))


async def test_a_non_streamed_reset_cuts_the_body_and_the_client_raises(provider, client):
    provider.enqueue(Behaviour.reset())

    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="fake", messages=USER_ONLY)

    assert await provider.wait_idle(10.0)
    assert provider.requests[0].outcome is Outcome.RESET


async def test_stopping_the_provider_cuts_a_stalled_stream_at_once():
    """Guards against a stop that waits for open responses to finish (a graceful server
    shutdown): a stalled stream never finishes, so the test run would hang at teardown."""
    fake = await FakeProvider().start()
    try:
        fake.enqueue(Behaviour.stall(after=1))
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as sdk:
            stream = await sdk.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)
            chunks = aiter(stream)
            received = [await anext(chunks) for _ in range(2)]  # role, then one content delta
            assert "".join(content_of(received)) == "Answer"
            assert fake.active_requests == 1

            await asyncio.wait_for(fake.aclose(), 10.0)

            assert (fake.active_requests, fake.open_connections) == (0, 0)
            assert fake.requests[0].outcome is Outcome.SERVER_STOPPED
            with pytest.raises(openai.APIConnectionError):
                await anext(chunks)
    finally:
        await fake.aclose()


async def test_requests_are_not_logged(provider, client, caplog):
    """Guards against the server logging every request at INFO (uvicorn's access log),
    which buries a test's own log lines and costs the benchmark a log call per request, and
    against a reset that uvicorn logs as an ASGI error (a response ended without completing)."""
    caplog.set_level(logging.DEBUG)
    provider.enqueue(Behaviour(), Behaviour.reset(after=1))

    await client.chat.completions.create(model="fake", messages=USER_ONLY)
    with pytest.raises(openai.APIConnectionError):
        await collect(await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True))
    assert await provider.wait_idle(10.0)

    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")] == []


async def test_on_uvicorns_h11_protocol_too_streams_resets_and_hang_ups_behave_the_same():
    """``http="h11"`` (the CLI's ``--http h11``, kept to compare the protocols' cost) must not
    change what a client sees: a stream, a reset mid-stream, a hang-up during ttft."""
    async with FakeProvider(http="h11") as fake:
        fake.enqueue(Behaviour(), Behaviour.reset(after=3), Behaviour(ttft=30))
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as sdk:
            chunks = await collect(await sdk.chat.completions.create(model="fake", messages=USER_ONLY, stream=True))
            assert "".join(content_of(chunks)) == compose_answer("Answer to:", "hello there", 30)
            with pytest.raises(openai.APIConnectionError):
                await collect(await sdk.chat.completions.create(model="fake", messages=USER_ONLY, stream=True))
            waiting = await sdk.chat.completions.create(model="fake", messages=USER_ONLY, stream=True)
            await waiting.close()
            assert await fake.wait_idle(10.0)
        assert [r.outcome for r in fake.requests] == [Outcome.COMPLETED, Outcome.RESET, Outcome.CLIENT_CLOSED]


# --- connections and keep-alive ----------------------------------------------------------------


async def test_keep_alive_reuses_one_connection_for_sequential_requests(provider, client):
    for _ in range(3):
        await collect(await client.chat.completions.create(model="fake", messages=USER_ONLY, stream=True))
        await client.chat.completions.create(model="fake", messages=USER_ONLY)

    assert provider.total_requests == 6
    assert provider.open_connections == 1, "the client keeps its pooled connection open"
    await client.close()
    assert await provider.wait_idle(10.0)


@pytest.mark.parametrize("stream", [True, False])
async def test_without_keep_alive_the_connection_closes_after_each_response(stream):
    async with FakeProvider(keep_alive=False) as fake:
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as sdk:
            raw = await sdk.chat.completions.with_raw_response.create(model="fake", messages=USER_ONLY, stream=stream)
            assert raw.headers["connection"] == "close"
            parsed = raw.parse()
            if stream:
                assert "".join(content_of(await collect(parsed))).startswith("Answer to: hello there")
            else:
                assert parsed.choices[0].message.content.startswith("Answer to: hello there")

            assert await fake.wait_idle(10.0), "closed although the client is still open"
            assert fake.open_connections == 0 and fake.active_requests == 0


async def test_raw_http_keep_alive_404_and_connection_close(provider):
    reader, writer = await asyncio.open_connection("127.0.0.1", provider.port)
    try:
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = await _read_response(reader)
        assert status == 200 and headers["connection"] == "keep-alive"
        assert json.loads(body) == {
            "object": "list",
            "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "fake-provider"}],
        }

        writer.write(b"POST /v1/nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        status, _headers, body = await _read_response(reader)
        assert status == 404 and "error" in json.loads(body)

        request = json.dumps({"model": "fake", "messages": USER_ONLY}).encode()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(request), request)
        )
        status, headers, body = await _read_response(reader)
        assert status == 200 and headers["connection"] == "close"
        assert json.loads(body)["choices"][0]["message"]["content"].startswith("Answer to: hello")
        assert await reader.read() == b"", "the server closes after Connection: close"
    finally:
        writer.close()
    assert await provider.wait_idle(10.0)
    assert provider.total_requests == 1, "only chat completions are counted"


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.strip().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def test_models_list_through_the_sdk(client):
    models = await client.models.list()
    assert [model.id for model in models.data] == ["fake"]


async def test_a_thousand_concurrent_streams_are_all_in_flight_at_once_and_all_complete(provider):
    # Raw sockets rather than the SDK: the point is the server's concurrency, and 1000 raw
    # requests go out in well under the ttft, so all of them are provably in flight together.
    provider.set_default(Behaviour(ttft=0.5, tokens_per_second=50, answer_words=10))

    async def one(index: int) -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", provider.port)
        try:
            body = json.dumps({"model": "fake", "messages": [{"role": "user", "content": f"q{index}"}], "stream": True})
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (len(body), body.encode())
            )
            response = await reader.read()  # to EOF: the server closes after Connection: close
        finally:
            writer.close()
        head, _, chunked = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head.lower()
        events = _dechunk(chunked).decode().split("\n\n")
        assert events[-2:] == ["data: [DONE]", ""]
        chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])

    calls = asyncio.gather(*(one(i) for i in range(1000)))
    assert await provider.wait_until(lambda p: p.active_requests == 1000, 60.0), "all 1000 are in flight at once"
    answers = await calls

    assert answers == [compose_answer("Answer to:", f"q{i}", 10) for i in range(1000)]
    assert provider.total_requests == 1000
    assert await provider.wait_idle(30.0)


def _dechunk(data: bytes) -> bytes:
    body, rest = b"", data
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", "the body ends with the zero-size chunk"
            return body
        body, rest = body + rest[:size], rest[size + 2 :]


async def test_it_runs_inside_the_current_event_loop_too():
    async with FakeProvider(keep_alive=False) as fake:
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as sdk:
            completion = await sdk.chat.completions.create(model="fake", messages=USER_ONLY)
        assert completion.choices[0].message.content.startswith("Answer to: hello there")
        assert await fake.wait_idle(10.0)


def test_the_sync_sdk_and_wait_idle_sync():
    with FakeProvider(keep_alive=False) as fake:
        with openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as sdk:
            chunks = list(sdk.chat.completions.create(model="fake", messages=USER_ONLY, stream=True))
        assert "".join(content_of(chunks)).startswith("Answer to: hello there")
        assert fake.wait_idle_sync(10.0)
    with pytest.raises(RuntimeError):
        _ = fake.base_url  # stopped


# --- pure helpers -----------------------------------------------------------------------------


def test_prompt_tokens_count_text_parts_and_tool_calls():
    messages = [
        {"role": "system", "content": "abcd"},  # 4
        {"role": "user", "content": [{"type": "text", "text": "efgh"}, {"type": "image_url", "image_url": {}}]},  # 4
        {"role": "assistant", "content": None, "tool_calls": [_call("c", "{}")]},  # 23 + 2
        {"role": "tool", "tool_call_id": "c", "content": "x"},  # 1
    ]
    assert prompt_tokens(messages) == math.ceil((4 + 4 + 25 + 1) / 4) == 9
    assert prompt_tokens([]) == 0


def test_compose_answer_quotes_the_seed_and_pads_to_length():
    assert compose_answer("Answer to:", "a b", 5) == "Answer to: a b tok1"
    assert compose_answer("P:", "one two three four", 3) == "P: one two three"  # seed capped, prefix kept


def test_first_member_id_reads_agnos_roster():
    assert first_member_id(LEADER_MESSAGES) == "research-specialist"
    assert first_member_id(USER_ONLY) is None


def test_behaviours_are_validated():
    with pytest.raises(ValueError):
        Behaviour(text="a", tool_name="b")
    with pytest.raises(ValueError):
        Behaviour.http_error(418)
    with pytest.raises(ValueError):
        Behaviour(chunk_words=0)
    assert Behaviour.http_error(529).fault is Fault.OVERLOADED


# --- the command line -------------------------------------------------------------------------


async def test_the_cli_serves_until_sigterm():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.doubles.fake_openai",
        "--port",
        "0",
        "--answer-words",
        "5",
        "--no-keep-alive",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line.startswith("fake provider listening on http://127.0.0.1:")
        base_url = line.split()[-1]
        async with openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as sdk:
            completion = await sdk.chat.completions.create(model="fake", messages=USER_ONLY)
        assert completion.choices[0].message.content == "Answer to: hello there tok1"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
    assert b"after 1 chat-completions requests" in output


# --- agno end to end -------------------------------------------------------------------------------


async def test_an_agno_team_delegates_to_its_member_and_reports_the_members_answer(provider):
    from agno.agent import Agent
    from agno.models.openai import OpenAILike
    from agno.team import Team
    from agno.team.mode import TeamMode

    def model() -> OpenAILike:
        return OpenAILike(id="fake", base_url=provider.base_url, api_key="x", max_retries=0)

    member = Agent(name="Research Specialist", id="research-specialist", model=model(), telemetry=False)
    team = Team(name="Leader", members=[member], model=model(), mode=TeamMode.coordinate, telemetry=False)

    events = [event async for event in team.arun("hi", stream=True, stream_events=True)]

    names = [event.event for event in events]
    [started] = [e for e in events if e.event == "TeamToolCallStarted"]
    assert started.tool.tool_name == "delegate_task_to_member"
    assert started.tool.tool_args == {"member_id": "research-specialist", "task": "hi"}
    member_text = "".join(e.content for e in events if e.event == "RunContent" and e.content)
    assert member_text == compose_answer("Answer to:", "hi", 30)
    [completed] = [e for e in events if e.event == "TeamRunCompleted"]
    assert member_text in completed.content and completed.content.startswith("Summary of results:")
    assert names.index("TeamToolCallStarted") < names.index("RunContent") < names.index("TeamRunCompleted")

    leader_first, member_call, leader_second = provider.requests
    assert leader_first.tool_names == ["delegate_task_to_member"] and leader_first.include_usage
    assert member_call.tool_names == [] and member_call.messages[-1] == {"role": "user", "content": "hi"}
    assert leader_second.messages[-1]["role"] == "tool" and leader_second.messages[-1]["content"] == member_text
