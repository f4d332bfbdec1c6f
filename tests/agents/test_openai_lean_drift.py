"""The agno and openai internals the lean streaming path reproduces or uses are the ones it was written against.

chat/agents/openai_lean.py replaces agno's `OpenAIChat.ainvoke_stream` (same request, same
deltas, same errors) and, to do so, reproduces what the openai SDK does for one streamed
chat-completions call: the request it builds for a client (URL, headers, timeout, the body's
encoding), the SSE decoding, the stream's error objects and end, the exceptions it turns
transport failures into; and it reads chunks as agno reads the SDK's models. Each upstream
function is pinned by a hash of its source, each model by its field names; when one changes,
re-read `chat.agents.openai_lean` against it (tests/agents/test_openai_lean.py shows whether the
two paths still agree), then update the pin.
"""

from __future__ import annotations

import pytest

from tests.drift import check_source, check_version

PINNED_OPENAI = "3.57.0"
OVERRIDE = "chat.agents.openai_lean, chat.agents.openai_wire and chat.agents.sse_decoding"

# upstream function -> (sha256 of its source, first 16 hex digits; what depends on it)
UPSTREAM = {
    "agno.models.openai.chat:OpenAIChat.ainvoke_stream": (
        "94c6bee9a5c41aef", "LeanStreaming.ainvoke_stream (replaces it: body keys, timer, error mapping)"),
    "agno.models.openai.chat:OpenAIChat.ainvoke": (
        "69a47926755d8ee0", "LeanStreaming.ainvoke (replaces it: body keys, timer, error mapping)"),
    "agno.models.openai.chat:OpenAIChat._parse_provider_response": (
        "bc8da8b200391dee", "LeanStreaming.ainvoke (hands it the SDK's own ChatCompletion)"),
    "openai._base_client:BaseClient._process_response_data": ("4406fcb1a3ae4105", "complete (the answer's model)"),
    "openai._response:BaseAPIResponse._parse": ("44f5e2b9d1902cad", "complete (JSON or not, by content type)"),
    "agno.models.openai.chat:OpenAIChat._parse_provider_response_delta": (
        "be6c0d709fbebe18", "_View and its subclasses (the attributes agno reads from a chunk)"),
    "agno.models.openai.chat:OpenAIChat._should_collect_metrics": ("06c665ff9dc45e21", "_Chunk / _Usage (usage reads)"),
    "agno.models.openai.chat:OpenAIChat._get_metrics": ("0668c9c59801e23a", "_Usage / _Details (usage reads)"),
    "agno.models.openai.chat:OpenAIChat.parse_tool_calls": ("42b1798c5f3fd7bc", "_ToolCall / _Function"),
    "agno.models.openai.chat:OpenAIChat.get_request_params": (
        "55e50f43a1f8adb0", "LeanStreaming.ainvoke_stream (the params it sends, _SDK_ONLY_PARAMS)"),
    "agno.models.openai.chat:OpenAIChat._format_all_messages": ("ab0499e7c3ade277", "LeanStreaming.ainvoke_stream"),
    "openai._streaming:AsyncStream.__stream__": (
        "381c66f37dd55cb8", "openai_wire.stream / sse_decoding.payloads ([DONE], the drain, errors, thread events)"),
    "openai._streaming:AsyncStream._iter_events": ("afe83a0e0ef594c7", "stream (transport errors mid-stream)"),
    "openai._streaming:SSEDecoder.decode": ("1d67b1b80412a816", "sse_decoding.SseDecoder._lines"),
    "openai._streaming:SSEDecoder.aiter_bytes": ("35a8168f03eedf5f", "sse_decoding.SseDecoder.feed / finish"),
    "openai._streaming:_SSELineDecoder.feed": ("8943ff857ddf572b", "sse_decoding.SseDecoder.feed (CR, LF, CRLF)"),
    "openai._streaming_cleanup:drain_response_async": ("9a28df3f1ae3bdf9", "_drain"),
    "openai._base_client:AsyncAPIClient.request": (
        "52506e6c8ba17cff", "stream (status errors, APITimeoutError / APIConnectionError, what is sent how)"),
    "openai._base_client:BaseClient._build_request": ("23cad049a0154f76", "route / Route (the request template)"),
    "openai._base_client:BaseClient._build_headers": ("c5876332cda1627e", "Route (headers fixed per client)"),
    "openai._utils._json:openapi_dumps": ("2443ca2bdc2d28d9", "_encode"),
    "openai._httpx2:request_exceptions": ("b0f7b33c3de515b4", "stream"),
    "openai._httpx2:timeout_exceptions": ("0cfe30e509b35342", "stream"),
    "openai.lib._client_auth:async_send_with_auth_retry": (
        "6e81092a6c179c16", "_authenticates_simply (which clients send plainly)"),
    "openai.lib._client_auth:async_prepare_options": ("29662896c76abba7", "_authenticates_simply / route"),
    "openai.lib._client_auth:async_send_request": ("3c67bd15e620d104", "_authenticates_simply"),
    "openai.lib._client_auth:asynccustom_auth": ("f0ef13eb7ac1f2d8", "_authenticates_simply"),
    "openai._vendor.httpx_aiohttp.transport:AiohttpTransport.handle_async_request": (
        "685989131a3a46dc", "openai_wire._aiohttp_send / _as_httpx (the request it sends, the Response it makes)"),
    "openai._vendor.httpx_aiohttp.transport:AiohttpTransport.get_client": (
        "dec02acb766dd249", "openai_wire.Route.session (the session made on first use)"),
    "openai._vendor.httpx_aiohttp.transport:map_aiohttp_exceptions": (
        "e98820cc04b9b076", "openai_wire._aiohttp_mapped (aiohttp's exceptions as httpx2's)"),
    "openai._vendor.httpx_aiohttp.transport:AiohttpResponseStream.__aiter__": (
        "d9ec63fb56f925e6", "openai_wire.stream (the body read piece by piece, exceptions mapped)"),
    "openai._vendor.httpx_aiohttp.client:Httpx2AiohttpClient._init_proxy_transport": (
        "d82670353d754480", "openai_wire._direct_aiohttp (a proxied client keeps httpx2)"),
    "openai.resources.chat.completions.completions:AsyncCompletions.create": (
        "2fe3a6d9a31a93c8", "LeanStreaming.ainvoke_stream (the body is what create() sends: no transform applies)"),
}

# The SDK models whose typed fields _View mirrors (a typed field comes back as a view).
MODEL_FIELDS = {
    "openai.types.chat:ChatCompletionChunk": [
        "choices", "created", "id", "model", "moderation", "obfuscation", "object", "service_tier",
        "system_fingerprint", "usage"],
    "openai.types.chat.chat_completion_chunk:Choice": ["delta", "finish_reason", "index", "logprobs"],
    "openai.types.chat.chat_completion_chunk:ChoiceDelta": [
        "audio", "content", "function_call", "refusal", "role", "tool_calls"],
    "openai.types.chat.chat_completion_chunk:ChoiceDeltaToolCall": ["function", "id", "index", "type"],
    "openai.types:CompletionUsage": [
        "completion_tokens", "completion_tokens_details", "prompt_tokens", "prompt_tokens_details", "total_tokens"],
}


def test_openai_is_the_pinned_version():
    """Guards against an openai upgrade going in without the lean path being re-checked."""
    check_version("openai", PINNED_OPENAI, f"{OVERRIDE} (the lean streaming path)")


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_upstream_code_the_lean_path_follows_is_unchanged(name):
    expected, what = UPSTREAM[name]
    distribution = name.split(".", 1)[0]
    check_source(name, expected, f"{OVERRIDE}.{what}", distribution)


@pytest.mark.parametrize("name", list(MODEL_FIELDS))
def test_the_chunk_models_have_the_fields_the_views_mirror(name):
    import importlib

    module, _, attr = name.partition(":")
    model = getattr(importlib.import_module(module), attr)
    assert sorted(model.model_fields) == MODEL_FIELDS[name], (
        f"{name} changed its fields: re-check {OVERRIDE}._View's typed keys (and _Chunk.model_extra), then update")
