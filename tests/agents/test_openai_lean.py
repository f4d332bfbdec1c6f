"""The lean streaming path against agno's stock SDK call: the same recorded streams, the same
deltas and the same errors, chunk for chunk (chat/agents/openai_lean.py).

Streams are recorded from the fake provider (tests/doubles/fake_openai: text, a delegation tool
call, a malformed chunk, a connection reset, a stalled stream, HTTP errors with and without
Retry-After) or written out byte for byte where the fake never sends such a thing (reasoning,
citations, audio, usage details and a provider's cost, keys outside OpenAI's schema, CRLF line
endings, comments, an error object inside the stream, bytes that are not UTF-8). Each is replayed
to both paths through the same SDK client's HTTP client (a replaying transport), as recorded and
cut into 1-byte and 7-byte pieces, and both must yield equal `ModelResponse` deltas, assemble
the same tool calls, send JSON-equal request bodies with the same headers, and fail with the same agno error (type,
status, message, Retry-After as the retry layer reads it).
"""

from __future__ import annotations

import dataclasses
import json
import re

import httpx2
import pytest
from agno.exceptions import ModelProviderError
from agno.models.message import Message
from agno.models.response import ModelResponse
from openai import AsyncOpenAI

from chat.agents import openai_wire, sse_decoding
from chat.agents.providers import ModelSpec, build_model
from chat.agents.retry import classify_failure
from tests.doubles.fake_openai import DELEGATE_TOOL, Behaviour, FakeProvider
from tests.doubles.fake_openai.replay import Recording, ReplayTransport, record

# --- recordings --------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {
    "name": DELEGATE_TOOL, "description": "Delegate a task to a member.",
    "parameters": {"type": "object", "properties": {"member_id": {"type": "string"}, "task": {"type": "string"}},
                   "required": ["member_id", "task"]}}}]
LEADER = [
    Message(role="system",
            content='You are the leader.\n<team_members>\n<member id="research-specialist">\n</team_members>'),
    Message(role="user", content="Please research the history of Copenhagen"),
]
AFTER_DELEGATION = [
    *LEADER,
    Message(role="assistant", content="", tool_calls=[{"id": "call_1", "type": "function", "function": {
        "name": DELEGATE_TOOL, "arguments": '{"member_id": "research-specialist", "task": "history"}'}}]),
    Message(role="tool", tool_call_id="call_1", content="Copenhagen was a fishing village ün Zealand."),
]

FAKE_CASES = {
    "text": (Behaviour.say("Copenhagen began as a Viking fishing village, then grew rich on trade."), LEADER),
    "tool call": (Behaviour(), LEADER),
    "answer after a tool result": (Behaviour(), AFTER_DELEGATION),
    "malformed chunk": (Behaviour.malformed_chunk(after=3), LEADER),
    "reset mid-stream": (Behaviour.reset(after=3), LEADER),
    "stalled stream": (Behaviour.stall(after=2), LEADER),
    "429 with Retry-After": (Behaviour.rate_limited(retry_after="7"), LEADER),
    "429 without Retry-After": (Behaviour.rate_limited(retry_after=None), LEADER),
    "500": (Behaviour.http_error(500), LEADER),
    "400": (Behaviour.http_error(400), LEADER),
    "401": (Behaviour.http_error(401), LEADER),
}


def _record(provider: FakeProvider, behaviour: Behaviour, messages: list[Message]) -> Recording:
    provider.enqueue(behaviour)
    return record(f"{provider.base_url}/chat/completions", {
        "model": "fake", "messages": [{"role": m.role, "content": m.content} for m in messages],
        "stream": True, "stream_options": {"include_usage": True}, "tools": TOOLS})


@pytest.fixture(scope="module")
def fake_recordings() -> dict[str, Recording]:
    with FakeProvider(chunk_words=2, answer_words=12, keep_alive=False) as provider:
        return {name: _record(provider, behaviour, messages) for name, (behaviour, messages) in FAKE_CASES.items()}


SSE = [("content-type", "text/event-stream")]


def _written(*lines: str, status: int = 200, headers=SSE, end: str = "\n", error=None) -> Recording:
    return Recording(status, headers, [end.join(lines).encode("utf-8")], error)


def _chunk(delta: dict | None = None, **extra) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": extra.pop("finish", None)}]
    return "data: " + json.dumps({"id": "chatcmpl-w1", "object": "chat.completion.chunk", "created": 1,
                                  "model": "fake", "choices": choices, **extra}) + "\n"


USAGE = {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49, "cost": 0.00012,
         "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0, "cache_write_tokens": 3},
         "completion_tokens_details": {"reasoning_tokens": 4, "audio_tokens": 1}}

WRITTEN = {
    "reasoning, citations, extras, usage details and cost, CRLF": _written(
        ": a comment line",
        _chunk({"role": "assistant", "content": ""}, system_fingerprint="fp_w", provider="someone"),
        _chunk({"reasoning_content": "Thinking about "}),
        _chunk({"reasoning": "the question."}),
        _chunk({"content": "Answer", "annotations": [
            {"type": "url_citation", "url_citation": {"url": "https://example.org", "title": "Example"}}]}),
        _chunk({"content": " with ünïcode ✓"}, x_extra={"nested": [1, 2]}),
        _chunk({}, finish="stop"),
        _chunk(None, usage=USAGE),
        "data: [DONE]\n", end="\r\n"),
    "two parallel tool calls": _written(
        _chunk({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": DELEGATE_TOOL, "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"member_id": "a",'}}]}),
        _chunk({"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "task": "t"}'}}]}),
        _chunk({}, finish="tool_calls"),
        _chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}),
        "data: [DONE]\n"),
    "text chunks in the shapes providers send them": _written(
        _chunk({"role": "assistant", "content": "", "refusal": None}, usage=None, obfuscation="Zx9"),
        _chunk({"content": "Hi"}, system_fingerprint=None, service_tier="default"),
        _chunk({"role": "assistant", "content": None}),
        'data: {"choices": [{"delta": {"content": " no id"}}]}\n',
        'data: {"id": "", "choices": [{"index": 0, "delta": {"content": " empty id"}}]}\n',
        'data: {"id": "c2", "choices": [{"index": 0, "delta": {"content": " a"}}, '
        '{"index": 1, "delta": {"content": " b"}}]}\n',
        'data: {"id": "c3", "choices": [{"index": 0, "delta": null}]}\n',
        _chunk({"content": " end"}, finish="stop", usage={"prompt_tokens": 3, "completion_tokens": 4,
                                                          "total_tokens": 7}),
        "data: [DONE]\n"),
    "audio": _written(
        _chunk({"audio": {"id": "audio_1", "data": "AAAA", "transcript": "hi", "expires_at": 5}}),
        _chunk({"audio": {"id": "audio_1", "transcript": " there"}}),
        "data: [DONE]\n"),
    "data on several lines, CR endings, an event name": _written(
        "event: message", 'data: {"id": "c", "choices": [{"index": 0,', 'data:  "delta": {"content": "x"}}]}', "",
        "data: [DONE]", "", end="\r"),
    "an error object inside the stream": _written(
        _chunk({"content": "Part"}), 'data: {"error": {"message": "overloaded mid-stream", "code": 529}}\n\n'),
    "an error object without a message": _written('data: {"error": {"code": "x"}}\n\n'),
    "an assistants thread event": _written('event: thread.run.created\ndata: {"id": "run_1"}\n\n',
                                             'event: error\ndata: {"error": {"message": "thread failed"}}\n\n'),
    "a payload that is not an object": _written(_chunk({"content": "a"}), "data: [1, 2]\n\n"),
    "bytes that are not UTF-8": Recording(200, SSE, [_chunk({"content": "ok"}).encode() + b"\n",
                                                     b'data: {"id": "\xff"}\n\n']),
    "an id field, then blank lines": _written(_chunk({"content": "a"}), "id: 7\n", "\n"),
    "no [DONE], the body just ends": _written(_chunk({"content": "tail"}), _chunk(None, usage=USAGE)),
    "the last line has no line end": Recording(200, SSE, [_chunk({"content": "a"}).encode() + b"\ndata: [DONE]"]),
    "reset before any byte": Recording(200, SSE, [], httpx2.ReadError),
    "400 context length": _written(json.dumps({"error": {"message": "This model's maximum context length is 8k",
                                                         "code": "context_length_exceeded"}}), status=400,
                                   headers=[("content-type", "application/json")]),
    "503 with a text body": Recording(503, [("content-type", "text/plain"), ("retry-after-ms", "1500")],
                                      [b"upstream unavailable"]),
    "429 whose error is a string": _written(json.dumps({"error": "slow down"}), status=429,
                                            headers=[("content-type", "application/json"), ("retry-after", "3")]),
    "redirect status": Recording(304, [], [b""]),
}


# --- running both paths ------------------------------------------------------------------


@pytest.fixture
def lean_settings(settings):
    settings.CIRKELLINE_MODEL_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CIRKELLINE_MAX_RETRIES = 0  # one call: the error itself is compared
    settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 30.0
    settings.CIRKELLINE_STREAM_IDLE_TIMEOUT = 30.0
    return settings


def _normal(delta: ModelResponse) -> dict:
    data = {f.name: getattr(delta, f.name) for f in dataclasses.fields(delta) if f.name != "created_at"}
    data["tool_calls"] = [_tool_call(t) for t in delta.tool_calls or []]
    usage = delta.response_usage
    data["response_usage"] = None if usage is None else usage.to_dict()
    data["audio"] = None if delta.audio is None else delta.audio.to_dict()
    return data


def _tool_call(call) -> dict:
    function = call.function
    return {"index": call.index, "id": call.id, "type": call.type,
            "function": None if function is None else {"name": function.name, "arguments": function.arguments}}


async def _call(settings, client_path: str, recording: Recording, size: int | None, messages, tools):
    settings.CIRKELLINE_MODEL_CLIENT = client_path
    replay = ReplayTransport(recording, size)
    sdk = AsyncOpenAI(base_url="http://provider.test/v1", api_key="test-key", max_retries=0, timeout=30,
                      http_client=httpx2.AsyncClient(transport=replay))
    model = build_model("leader", ModelSpec("openai-like", "fake"))
    model.get_async_client = lambda: sdk  # both paths: this client, its HTTP client, the replay
    deltas, raw_tool_calls, error = [], [], None
    try:
        async for delta in model.ainvoke_stream(messages=list(messages), assistant_message=Message(role="assistant"),
                                                tools=tools):
            deltas.append(_normal(delta))
            raw_tool_calls.extend(delta.tool_calls or [])
    except ModelProviderError as exc:
        failure = classify_failure(exc)
        error = (type(exc).__name__, exc.status_code, failure.message, failure.retry_after)
    tool_calls = model.parse_tool_calls(raw_tool_calls) if raw_tool_calls else []
    return {"deltas": deltas, "tool_calls": tool_calls, "error": error, "bodies": replay.bodies,
            "requests": replay.requests}


async def _compare(settings, recording: Recording, messages=LEADER, tools=TOOLS) -> dict:
    results = {}
    for size in (None, 1, 7):
        sdk = await _call(settings, "sdk", recording, size, messages, tools)
        lean = await _call(settings, "lean", recording, size, messages, tools)
        assert lean["deltas"] == sdk["deltas"], f"pieces of {size} bytes"
        assert lean["tool_calls"] == sdk["tool_calls"]
        assert lean["error"] == sdk["error"], f"pieces of {size} bytes"
        assert lean["bodies"] == sdk["bodies"]
        assert lean["requests"] == sdk["requests"]  # method, URL, every header, timeouts
        results[size] = lean
    return results[None]


@pytest.mark.parametrize("name", list(FAKE_CASES))
async def test_the_fake_providers_streams_give_the_same_deltas_and_errors(lean_settings, fake_recordings, name):
    _, messages = FAKE_CASES[name]
    seen = await _compare(lean_settings, fake_recordings[name], messages)
    if name == "text":
        assert "".join(d["content"] or "" for d in seen["deltas"]).startswith("Copenhagen began")
        assert seen["deltas"][-1]["response_usage"]["total_tokens"] > 0
    if name == "tool call":
        assert seen["tool_calls"][0]["function"]["name"] == DELEGATE_TOOL
        assert json.loads(seen["tool_calls"][0]["function"]["arguments"])["member_id"] == "research-specialist"
    if name == "429 with Retry-After":
        assert seen["error"] == ("ModelProviderError", 429, seen["error"][2], 7.0)


@pytest.mark.parametrize("name", list(WRITTEN))
async def test_written_streams_give_the_same_deltas_and_errors(lean_settings, name):
    seen = await _compare(lean_settings, WRITTEN[name])
    assert seen["deltas"] or seen["error"]
    if name in ERRORS:
        assert seen["error"][2] == ERRORS[name]


ERRORS = {  # what the written streams that fail fail with (the same on both paths, checked above)
    "an error object inside the stream": "overloaded mid-stream",
    "an error object without a message": "An error occurred during streaming",
    "an assistants thread event": "thread failed",
    "a payload that is not an object": "'list' object has no attribute 'choices'",
    "reset before any byte": "Connection error.",
    "400 context length": "This model's maximum context length is 8k",
    "503 with a text body": "upstream unavailable",
    "429 whose error is a string": "slow down",
}


async def test_the_lean_path_really_bypasses_the_sdk_call(lean_settings, monkeypatch, fake_recordings):
    """Guards against the comparisons above passing because both runs took the SDK path (the
    setting ignored, or every client judged not simple enough for the lean route)."""
    from agno.models.openai.chat import OpenAIChat

    async def no_sdk(*args, **kwargs):
        raise AssertionError("the SDK path was taken")
        yield  # pragma: no cover - makes this an async generator

    monkeypatch.setattr(OpenAIChat, "ainvoke_stream", no_sdk)
    lean = await _call(lean_settings, "lean", fake_recordings["text"], None, LEADER, TOOLS)
    assert lean["deltas"] and lean["error"] is None


async def test_text_chunks_are_parsed_without_agnos_parse(lean_settings, monkeypatch, fake_recordings):
    """The fake provider's text stream: every chunk with text is made into agno's delta by
    `text_delta`; agno's own parse sees only the rest (the usage chunk). Guards against the
    comparisons above passing because the quick parse is never taken."""
    from chat.agents import openai_lean

    parsed = []
    as_chunk = openai_lean.as_chunk
    monkeypatch.setattr(openai_lean, "as_chunk", lambda data: parsed.append(data) or as_chunk(data))
    lean = await _call(lean_settings, "lean", fake_recordings["text"], None, LEADER, TOOLS)
    texts = [d for d in lean["deltas"] if d["content"]]
    assert len(texts) > 3 and lean["error"] is None
    assert [data.get("usage") is not None for data in parsed] == [True]


async def test_clients_the_lean_route_cannot_reproduce_keep_the_sdk(lean_settings, fake_recordings):
    async def key_provider() -> str:
        return "rotating-key"

    lean_settings.CIRKELLINE_MODEL_CLIENT = "lean"
    replay = ReplayTransport(fake_recordings["text"])
    sdk = AsyncOpenAI(base_url="http://provider.test/v1", api_key=key_provider, max_retries=0,
                      http_client=httpx2.AsyncClient(transport=replay))
    assert await openai_wire.route(sdk) is None
    model = build_model("leader", ModelSpec("openai-like", "fake"))
    model.get_async_client = lambda: sdk
    deltas = [d async for d in model.ainvoke_stream(messages=list(LEADER), assistant_message=Message(role="assistant"))]
    assert deltas and replay.bodies


def test_the_sse_decoder_splits_lines_as_the_sdk_does():
    from openai._streaming import SSEDecoder

    stream = b"data: a\r\ndata: b\r\rdata: c\n\nevent: e\ndata: d\r\n\r\n: note\nretry: 5\nid: 1\n\n"
    for size in range(1, len(stream) + 1):
        pieces = [stream[i:i + size] for i in range(0, len(stream), size)]
        ours = sse_decoding.SseDecoder()
        got = [event for piece in pieces for event in ours.feed(piece)] + ours.finish()
        sdk = [(e.event, e.data) for e in SSEDecoder().iter_bytes(iter(pieces))]
        assert got == sdk, size


async def _live_model(settings, provider: FakeProvider):
    settings.CIRKELLINE_MODEL_CLIENT = "lean"
    settings.CIRKELLINE_MODEL_BASE_URL = provider.base_url
    settings.CIRKELLINE_PROVIDER_CLIENTS = 1
    return build_model("leader", ModelSpec("openai-like", "fake"))


async def test_a_finished_stream_leaves_its_connection_for_the_next_call(lean_settings):
    """Guards against the lean path closing a connection whose stream ended (not reading what
    follows [DONE]: chat/agents/openai_wire.py `_drain`): every call would open a new connection."""
    async with FakeProvider(answer_words=6) as provider:
        for _ in range(3):
            model = await _live_model(lean_settings, provider)
            deltas = [d async for d in model.ainvoke_stream(messages=list(LEADER),
                                                            assistant_message=Message(role="assistant"))]
            assert "".join(d.content or "" for d in deltas)
        assert await provider.wait_until(lambda p: p.active_requests == 0, 5.0)
        assert provider.open_connections == 1


async def test_a_stream_given_up_early_closes_its_connection(lean_settings):
    """A run that is cancelled mid-answer stops reading: the provider must see the call end."""
    async with FakeProvider(answer_words=40, tokens_per_second=20) as provider:
        model = await _live_model(lean_settings, provider)
        stream = model.ainvoke_stream(messages=list(LEADER), assistant_message=Message(role="assistant"))
        async for delta in stream:
            if delta.content:
                break
        await stream.aclose()
        assert await provider.wait_idle(5.0), (provider.open_connections, provider.active_requests)


# --- whole runs --------------------------------------------------------------------------


def _run_shape(frames) -> tuple[list, dict]:
    """A streamed run as both paths must give it: its events in order (text deltas merged per
    agent, since the stream merges deltas that queue up), tool calls and the text each agent said."""
    events, texts = [], {}
    for frame in frames:
        data = frame.data
        who = data.get("agent_id") or data.get("team_id")
        if frame.event in ("RunContent", "TeamRunContent"):
            texts[who] = texts.get(who, "") + (data.get("content") or "")
            if events[-1:] != [(frame.event, who)]:
                events.append((frame.event, who))
            continue
        tool = data.get("tool") or {}
        events.append((frame.event, who, tool.get("tool_name"), json.dumps(tool.get("tool_args"), sort_keys=True),
                       data.get("discarded_characters"), data.get("error_type")))
    return events, texts


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("script", [(), (Behaviour(), Behaviour.reset(after=3)),
                                    (Behaviour.rate_limited(retry_after="0"),)],
                         ids=["delegated run", "member reset mid-answer, retried", "leader rate-limited, retried"])
async def test_a_whole_run_streams_the_same_on_both_paths(api, alice, settings, script, monkeypatch):
    from datetime import UTC, datetime

    from chat.agents import personal
    from chat.runs import teams
    from metrics.models import RunUsage
    from tests.conftest import adb, bearer, parse_sse

    # The leader is told the user's local time to the minute: both paths' runs see the same one,
    # or the bodies differ whenever a minute turns between them.
    monkeypatch.setattr(personal, "_now", lambda: datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    shapes = {}
    for client_path in ("sdk", "lean"):
        with FakeProvider(answer_words=12, tokens_per_second=200, keep_alive=False) as provider:
            settings.CIRKELLINE_MODEL = "openai-like:fake"
            settings.CIRKELLINE_MODEL_BASE_URL = provider.base_url
            settings.CIRKELLINE_MODEL_CLIENT = client_path
            settings.CIRKELLINE_MAX_RETRIES = 2
            settings.CIRKELLINE_RETRY_DELAY = 0.01
            teams.prototype.cache_clear()
            provider.enqueue(*script)
            response = await api.post("/teams/cirkelline/runs", data={"message": "Please research Copenhagen"},
                                      headers=bearer(alice))
            frames = parse_sse(response.text)
            row = await adb(RunUsage.objects.get, run_id=frames[0].data["run_id"])
            shapes[client_path] = (_run_shape(frames), (row.status, row.input_tokens, row.output_tokens,
                                                        row.model_calls, row.retries, row.member_runs))
            # What each path sent, but for the tool-call ids the provider made up.
            sent = re.sub(r"call_fake[0-9a-f]+", "call_ID", json.dumps([r.body for r in provider.requests]))
            shapes[client_path] += (json.loads(sent),)
            assert await provider.wait_idle(10.0)
    assert shapes["lean"] == shapes["sdk"]
    (events, _texts), (status, *_rest), _bodies = shapes["lean"]
    assert status == "completed" and events[-1][0] == "TeamRunCompleted"
