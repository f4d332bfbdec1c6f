"""The lean path's non-streamed call (a session's naming: chat.agents.naming) against agno's stock
SDK call: the same recorded answers give equal `ModelResponse`s and the same agno errors, and the
provider gets JSON-equal request bodies with the same headers (chat/agents/openai_lean.py `ainvoke`).

Answers are recorded from the fake provider (a text answer, HTTP errors with and without
Retry-After) or written out where the fake never sends such a thing (tool calls, citations, audio,
reasoning, usage details and a provider's cost, keys outside OpenAI's schema, an error object in a
200 answer, a body that is not JSON with and without a JSON content type, a connection reset).
"""

from __future__ import annotations

import dataclasses
import json

import httpx2
import pytest
from agno.exceptions import ModelProviderError
from agno.models.message import Message
from openai import AsyncOpenAI

from chat.agents.providers import ModelSpec, build_model
from chat.agents.retry import classify_failure
from tests.doubles.fake_openai import Behaviour, FakeProvider
from tests.doubles.fake_openai.replay import Recording, ReplayTransport, record

MESSAGES = [Message(role="system", content="Name the chat in at most 8 words."),
            Message(role="user", content="First message: hello ü\nAnswer: hi there")]
JSON = [("content-type", "application/json")]


def _answer(message: dict, **extra) -> Recording:
    body = {"id": "chatcmpl-n1", "object": "chat.completion", "created": 1, "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], **extra}
    return Recording(200, JSON, [json.dumps(body).encode()])


FAKE = {
    "text": Behaviour.say("Copenhagen history questions"),
    "429 with Retry-After": Behaviour.rate_limited(retry_after="7"),
    "500": Behaviour.http_error(500),
    "400": Behaviour.http_error(400),
}

WRITTEN = {
    "tool calls, citations, reasoning, usage details, cost, extras": _answer(
        {"role": "assistant", "content": "<think>hm</think>Title here", "reasoning_content": "because",
         "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
         "annotations": [{"type": "url_citation", "url_citation": {"url": "https://example.org", "title": "Ex",
                                                                   "start_index": 0, "end_index": 1}}]},
        usage={"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49, "cost": 0.00012,
               "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 4}},
        system_fingerprint="fp_x", provider="someone"),
    "audio": _answer({"role": "assistant", "content": None,
                      "audio": {"id": "au", "data": "AAAA", "transcript": "spoken title", "expires_at": 5}}),
    "an error object in a 200 answer": Recording(200, JSON, [b'{"error": {"message": "overloaded", "code": 529}}']),
    "a text body": Recording(200, [("content-type", "text/plain")], [b"just text"]),
    "a text body that is JSON": Recording(200, [("content-type", "text/plain")],
                                          [json.dumps({"id": "c", "choices": [{"index": 0, "message": {
                                              "role": "assistant", "content": "ok"}}]}).encode()]),
    "a JSON content type, not JSON": Recording(200, JSON, [b"{not json"]),
    "no choices": Recording(200, JSON, [b'{"id": "c", "choices": []}']),
    "reset before any byte": Recording(200, JSON, [], httpx2.ReadError),
    "400 context length": Recording(400, JSON, [json.dumps({"error": {
        "message": "maximum context length is 8k", "code": "context_length_exceeded"}}).encode()]),
    "503 with a text body": Recording(503, [("content-type", "text/plain"), ("retry-after-ms", "1500")],
                                      [b"upstream unavailable"]),
}


@pytest.fixture(scope="module")
def fake_recordings() -> dict[str, Recording]:
    with FakeProvider(keep_alive=False) as provider:
        out = {}
        for name, behaviour in FAKE.items():
            provider.enqueue(behaviour)
            out[name] = record(f"{provider.base_url}/chat/completions", {
                "model": "fake", "messages": [{"role": m.role, "content": m.content} for m in MESSAGES]})
        return out


@pytest.fixture
def lean_settings(settings):
    settings.CIRKELLINE_MODEL_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CIRKELLINE_MAX_RETRIES = 0  # one call: the error itself is compared
    settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT = 30.0
    return settings


def _normal(response) -> dict:
    data = {f.name: getattr(response, f.name) for f in dataclasses.fields(response) if f.name != "created_at"}
    usage = response.response_usage
    data["response_usage"] = None if usage is None else usage.to_dict()
    data["audio"] = None if response.audio is None else response.audio.to_dict()
    data["citations"] = None if response.citations is None else response.citations.model_dump()
    return data


async def _call(settings, client_path: str, recording: Recording) -> dict:
    settings.CIRKELLINE_MODEL_CLIENT = client_path
    replay = ReplayTransport(recording)
    sdk = AsyncOpenAI(base_url="http://provider.test/v1", api_key="test-key", max_retries=0, timeout=30,
                      http_client=httpx2.AsyncClient(transport=replay))
    model = build_model("naming", ModelSpec("openai-like", "fake"))
    model.get_async_client = lambda: sdk  # both paths: this client, its HTTP client, the replay
    response, error = None, None
    try:
        response = _normal(await model.ainvoke(messages=list(MESSAGES), assistant_message=Message(role="assistant")))
    except ModelProviderError as exc:
        failure = classify_failure(exc)
        error = (type(exc).__name__, exc.status_code, failure.message, failure.retry_after)
    return {"response": response, "error": error, "bodies": replay.bodies, "requests": replay.requests}


async def _compare(settings, recording: Recording) -> dict:
    sdk = await _call(settings, "sdk", recording)
    lean = await _call(settings, "lean", recording)
    assert lean["response"] == sdk["response"]
    assert lean["error"] == sdk["error"]
    assert lean["bodies"] == sdk["bodies"] and len(lean["bodies"]) == 1
    assert lean["requests"] == sdk["requests"]  # method, URL, every header, timeouts
    return lean


@pytest.mark.parametrize("name", list(FAKE))
async def test_the_fake_providers_answers_give_the_same_response_and_errors(lean_settings, fake_recordings, name):
    seen = await _compare(lean_settings, fake_recordings[name])
    if name == "text":
        assert seen["response"]["content"] == "Copenhagen history questions"
        assert seen["response"]["response_usage"]["total_tokens"] > 0
        assert "stream" not in seen["bodies"][0]
    if name == "429 with Retry-After":
        assert seen["error"] == ("ModelProviderError", 429, seen["error"][2], 7.0)


@pytest.mark.parametrize("name", list(WRITTEN))
async def test_written_answers_give_the_same_response_and_errors(lean_settings, name):
    seen = await _compare(lean_settings, WRITTEN[name])
    assert seen["response"] or seen["error"]


async def test_the_lean_path_really_bypasses_the_sdk_call(lean_settings, monkeypatch, fake_recordings):
    """Guards against the comparisons above passing because both calls took the SDK path."""
    from agno.models.openai.chat import OpenAIChat

    async def no_sdk(*args, **kwargs):
        raise AssertionError("the SDK path was taken")

    monkeypatch.setattr(OpenAIChat, "ainvoke", no_sdk)
    lean = await _call(lean_settings, "lean", fake_recordings["text"])
    assert lean["response"]["content"] == "Copenhagen history questions" and lean["error"] is None
