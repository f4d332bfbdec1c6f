"""The lean OpenAI-compatible streaming path: agno's streamed chat-completions call without the SDK's per-call work.

`LeanStreaming` is a mixin for agno's `OpenAIChat` / `OpenAILike` (chat.agents.providers) that
replaces `ainvoke_stream`, the one provider call a Cirkelline run makes (runs always stream), and
`ainvoke`, the non-streamed call of a session's naming (chat.agents.naming): the request is sent the
same lean way, and its answer is made into the SDK's `ChatCompletion` by the SDK's own code.
agno's `OpenAIChat.ainvoke_stream` hands each call to the openai SDK, which walks and
type-transforms the whole request (`_async_transform_recursive`), goes through its request
machinery, and builds pydantic models for every streamed chunk (`construct_type`): about half of
a run's CPU in a profile (docs/PERFORMANCE.md, "The model path"). This path sends the same
request through the same shared SDK client's HTTP client and connection pool, with the headers,
URL and timeouts the SDK itself computed once for that client (chat.agents.openai_wire: the
route, the SSE decoding, and the request sent on the client's aiohttp session directly when it
has one), encodes the body with the SDK's own encoder, and makes every chunk into agno's delta
without an SDK model: text chunks (most of a stream) by `text_delta`, the rest by agno's own
`_parse_provider_response_delta` on a light attribute view of the parsed JSON. So agno sees the
same `ModelResponse` deltas, chunk for chunk, and failures become the
same agno errors (`ModelProviderError` with the provider's status code, the HTTP response behind
it for `Retry-After`; `ContextWindowExceededError`) that chat.agents.retry acts on.

This is the default; `CIRKELLINE_MODEL_CLIENT=sdk` keeps agno's stock SDK call; so do clients the SDK authenticates in
ways this path does not reproduce (an API key provider, workload identity, provider runtimes,
custom auth, default query parameters) and requests with `extra_headers` / `extra_query` /
`extra_body`. tests/agents/test_openai_lean.py holds the contract (the same recorded streams give
the same deltas and errors on both paths) and tests/agents/test_openai_lean_drift.py pins every
agno and openai internal used here and in chat.agents.openai_wire.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from agno.exceptions import ContextWindowExceededError, ModelAuthenticationError, ModelProviderError
from agno.models.response import ModelResponse
from agno.utils.log import log_error
from django.conf import settings

from . import openai_wire as wire

# Per-request options the SDK turns into headers, query parameters or body keys; rare enough to
# leave to the SDK.
_SDK_ONLY_PARAMS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


# --- chunks as agno reads them -----------------------------------------------------------


class _View:
    """Attribute access to one JSON object of a streamed chunk, as agno reads the SDK's models.

    A missing key reads as None (agno checks `is not None`, and `hasattr` then `is not None` for
    the keys the SDK keeps as extras, so both give the same branch). Keys the SDK types as a model
    or a list of models come back as views; everything else is the parsed JSON value, which is
    exactly what the SDK keeps for keys outside its schema.
    """

    __slots__ = ("_data",)
    _objects: ClassVar[dict[str, type[_View]]] = {}
    _lists: ClassVar[dict[str, type[_View]]] = {}

    def __init__(self, data: dict) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = self._data.get(name)
        if value is None:
            return None
        view = self._objects.get(name)
        if view is not None:
            return view(value) if isinstance(value, dict) else value
        view = self._lists.get(name)
        if view is not None and isinstance(value, list):
            return [view(item) if isinstance(item, dict) else item for item in value]
        return value


class _Function(_View):
    __slots__ = ()


class _ToolCall(_View):
    __slots__ = ()
    _objects = {"function": _Function}


class _Delta(_View):
    __slots__ = ()
    _lists = {"tool_calls": _ToolCall}


class _Choice(_View):
    __slots__ = ()
    _objects = {"delta": _Delta}


class _Details(_View):
    __slots__ = ()


class _Usage(_View):
    __slots__ = ()
    _objects = {"prompt_tokens_details": _Details, "completion_tokens_details": _Details}


class _Chunk(_View):
    __slots__ = ()
    _objects = {"usage": _Usage}
    _lists = {"choices": _Choice}
    fields: ClassVar[frozenset[str]] = frozenset()  # ChatCompletionChunk's, set on first use

    @property
    def model_extra(self) -> dict:
        """The keys outside ChatCompletionChunk's schema, as the SDK's `model_extra`."""
        fields = self.fields
        return {key: value for key, value in self._data.items() if key not in fields}


def as_chunk(data: Any) -> Any:
    """A parsed `data:` payload as agno's `_parse_provider_response_delta` reads it."""
    return _Chunk(data) if isinstance(data, dict) else data


# The keys of a chunk's delta that agno's `_parse_provider_response_delta` does not read.
_UNREAD_DELTA_KEYS = frozenset({"role", "refusal"})
_TEXT_DELTA_KEYS = _UNREAD_DELTA_KEYS | {"content"}


def text_delta(data: Any) -> ModelResponse | None:
    """agno's `_parse_provider_response_delta` (agno 3.1.10) for the chunks most of a stream is made
    of, read from the parsed JSON directly; None for every other chunk, which goes to agno's.

    Those chunks: no usage, and a first choice (agno reads no other) whose delta holds text only
    (`content`, and the `role` / `refusal` agno does not read). agno's parse of such a chunk, on a
    `_Chunk` view, makes ~18 attribute reads through the view (each a dict lookup, some building a
    view or a list of views) and a dozen `hasattr` branches that all come out empty: 22-27 us per
    chunk against 2.2-2.4 for this (`python -m bench.provider_cost`, docs/PERFORMANCE.md). What it
    gives is agno's: the text, and when the delta has text, the chunk's `id`, `system_fingerprint`
    and the keys outside the SDK's chunk model as `provider_data`. tests/agents/test_openai_lean.py
    compares every recorded stream's deltas with the SDK path's and fails if a text chunk reaches
    agno's parse.
    """
    if type(data) is not dict or data.get("usage") is not None:
        return None
    choices = data.get("choices")
    if type(choices) is not list or not choices or type(choices[0]) is not dict:
        return None
    delta = choices[0].get("delta")
    if type(delta) is not dict or not delta.keys() <= _TEXT_DELTA_KEYS:
        return None
    response = ModelResponse()
    content = delta.get("content")
    if content is not None:
        response.content = content
        provider_data = response.provider_data = {}
        if data.get("id"):
            provider_data["id"] = data["id"]
        if data.get("system_fingerprint"):
            provider_data["system_fingerprint"] = data["system_fingerprint"]
        fields = _Chunk.fields
        extra = {key: value for key, value in data.items() if key not in fields}
        if extra:
            provider_data["model_extra"] = extra
    return response


def _none(data: Any) -> None:
    return None


def _quick_parse(model: Any) -> Any:
    """`text_delta` for a model that parses chunks as agno's OpenAIChat does; else a parse that
    leaves every chunk to the model's own."""
    from agno.models.openai.chat import OpenAIChat  # imported already: the model is one

    return text_delta if type(model)._parse_provider_response_delta is OpenAIChat._parse_provider_response_delta \
        else _none


# --- the model mixin ---------------------------------------------------------------------


def _encode(body: dict) -> bytes:
    from openai._utils._json import openapi_dumps

    return openapi_dumps(body)


class LeanStreaming:
    """Mixin for agno's OpenAIChat / OpenAILike (under chat.agents.retry.ResilientModel):
    `ainvoke_stream` without the openai SDK's per-call work, or the SDK's when it must."""

    async def _lean_route(self, response_format, tools, tool_choice, run_response) -> tuple[Any, dict | None]:
        """The client's route and the call's request params, or (None, None): the SDK's call."""
        if settings.CIRKELLINE_MODEL_CLIENT != "lean":
            return None, None
        params = self.get_request_params(  # type: ignore[attr-defined]
            response_format=response_format, tools=tools, tool_choice=tool_choice, run_response=run_response)
        if _SDK_ONLY_PARAMS.intersection(params):
            return None, None
        found = await wire.route(self.get_async_client())  # type: ignore[attr-defined]
        return (found, params) if found is not None else (None, None)

    async def ainvoke_stream(self, messages, assistant_message, response_format=None, tools=None, tool_choice=None,
                             run_response=None, compress_tool_results: bool = False) -> AsyncIterator[Any]:
        """agno's OpenAIChat.ainvoke_stream (agno 3.1.10): the same deltas and errors, by the lean route."""
        route, params = await self._lean_route(response_format, tools, tool_choice, run_response)
        if route is None:
            async for delta in super().ainvoke_stream(  # type: ignore[misc]
                messages=messages, assistant_message=assistant_message, response_format=response_format,
                tools=tools, tool_choice=tool_choice, run_response=run_response,
                compress_tool_results=compress_tool_results,
            ):
                yield delta
            return
        if not _Chunk.fields:
            _chunk_fields()
        with self._as_agno_errors():
            assistant_message.metrics.start_timer()
            body = {
                "model": self.id,  # type: ignore[attr-defined]
                "messages": self._format_all_messages(messages, compress_tool_results),  # type: ignore[attr-defined]
                "stream": True,
                "stream_options": {"include_usage": True},
                **params,
            }
            parse = self._parse_provider_response_delta  # type: ignore[attr-defined]
            quick = _quick_parse(self)
            # aclosing: a consumer that stops early (a cancelled run) closes the HTTP stream now.
            async with contextlib.aclosing(wire.stream(route, _encode(body))) as chunks:
                async for data in chunks:
                    delta = quick(data)
                    yield delta if delta is not None else parse(as_chunk(data))
            assistant_message.metrics.stop_timer()

    async def ainvoke(self, messages, assistant_message, response_format=None, tools=None, tool_choice=None,
                      run_response=None, compress_tool_results: bool = False) -> Any:
        """agno's OpenAIChat.ainvoke (agno 3.1.10) by the lean route: the request without the SDK's
        per-call building, the answer made into the SDK's `ChatCompletion` by the SDK's own code
        (`openai_wire.complete`), then agno's `_parse_provider_response`; the same errors."""
        route, params = await self._lean_route(response_format, tools, tool_choice, run_response)
        if route is None:
            return await super().ainvoke(  # type: ignore[misc]
                messages=messages, assistant_message=assistant_message, response_format=response_format,
                tools=tools, tool_choice=tool_choice, run_response=run_response,
                compress_tool_results=compress_tool_results,
            )
        with self._as_agno_errors():
            assistant_message.metrics.start_timer()
            body = {
                "model": self.id,  # type: ignore[attr-defined]
                "messages": self._format_all_messages(messages, compress_tool_results),  # type: ignore[attr-defined]
                **params,
            }
            response = await wire.complete(route, _encode(body))
            assistant_message.metrics.stop_timer()
            return self._parse_provider_response(response, response_format=response_format)  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def _as_agno_errors(self) -> Iterator[None]:
        """agno's OpenAIChat error mapping (its except clauses, streamed or not) for the lean route."""
        try:
            yield
        except wire.ProviderStatusError as error:
            raise self._status_error(error) from error
        except wire.ProviderConnectionError as error:
            log_error(f"API connection error from OpenAI API: {error}")
            raise ModelProviderError(message=str(error), model_name=self.name, model_id=self.id) from error  # type: ignore[attr-defined]
        except ModelAuthenticationError as error:
            log_error(f"Model authentication error from OpenAI API: {error}")
            raise
        except Exception as error:
            log_error(f"Error from OpenAI API: {error}")
            raise ModelProviderError(message=str(error), model_name=self.name, model_id=self.id) from error  # type: ignore[attr-defined]

    def _status_error(self, error: wire.ProviderStatusError) -> ModelProviderError:
        """agno's mapping of the SDK's RateLimitError (429) and APIStatusError (other statuses)."""
        response = error.response
        try:
            body = response.json().get("error", {})
        except Exception:
            body = response.text
        message = body.get("message", "Unknown model error") if isinstance(body, dict) else body
        name, model_id = self.name, self.id  # type: ignore[attr-defined]
        if error.status_code == 429:
            log_error(f"Rate limit error from OpenAI API: {error}")
            return ModelProviderError(message=message, status_code=429, model_name=name, model_id=model_id)
        log_error(f"API status error from OpenAI API: {error}")
        code = body.get("code") if isinstance(body, dict) else None
        if code == "context_length_exceeded":
            return ContextWindowExceededError(message=message, status_code=error.status_code, model_name=name,
                                              model_id=model_id)
        return ModelProviderError(message=message, status_code=error.status_code, model_name=name, model_id=model_id)


def _chunk_fields() -> frozenset[str]:
    from openai.types.chat import ChatCompletionChunk

    _Chunk.fields = frozenset(ChatCompletionChunk.model_fields)
    return _Chunk.fields
