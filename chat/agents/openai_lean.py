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
URL and timeouts the SDK itself computed once for that client (`_Route`), encodes the body with
the SDK's own encoder, decodes the SSE stream as the SDK does, and hands every chunk to agno's
own `_parse_provider_response_delta` as a light attribute view of the parsed JSON instead of an
SDK model. So agno sees the same `ModelResponse` deltas, chunk for chunk, and failures become the
same agno errors (`ModelProviderError` with the provider's status code, the HTTP response behind
it for `Retry-After`; `ContextWindowExceededError`) that chat.agents.retry acts on.

This is the default; `CIRKELLINE_MODEL_CLIENT=sdk` keeps agno's stock SDK call; so do clients the SDK authenticates in
ways this path does not reproduce (an API key provider, workload identity, provider runtimes,
custom auth, default query parameters) and requests with `extra_headers` / `extra_query` /
`extra_body`. tests/agents/test_openai_lean.py holds the contract (the same recorded streams give
the same deltas and errors on both paths) and tests/agents/test_openai_lean_drift.py pins every
agno and openai internal used here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from agno.exceptions import ContextWindowExceededError, ModelAuthenticationError, ModelProviderError
from agno.utils.log import log_error
from django.conf import settings

# Per-request options the SDK turns into headers, query parameters or body keys; rare enough to
# leave to the SDK.
_SDK_ONLY_PARAMS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
_DRAIN_SECONDS = 0.1  # as the SDK: how long the rest of a body may take after [DONE]


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


# --- the SSE stream ----------------------------------------------------------------------


class SseDecoder:
    """Server-sent events from bytes, as the SDK's `SSEDecoder` over `_SSELineDecoder` decodes them.

    Lines end at CR, LF or CRLF (a CR at the end of a piece waits for the next piece, which may
    start with its LF); each line is UTF-8; a blank line dispatches the event collected so far.
    Returns (event, data) pairs.
    """

    __slots__ = ("_buffer", "_event", "_data", "_last_event_id", "_retry")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._last_event_id: str | None = None
        self._retry: int | None = None

    def feed(self, piece: bytes) -> list[tuple[str | None, str]]:
        buffer = self._buffer + piece if self._buffer else piece
        # Complete lines end at the last LF, or at a CR that is not the last byte.
        cut = max(buffer.rfind(b"\n"), buffer.rfind(b"\r", 0, len(buffer) - 1))
        if cut < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[cut + 1:]
        return self._lines(buffer[: cut + 1].splitlines())

    def finish(self) -> list[tuple[str | None, str]]:
        rest, self._buffer = self._buffer, b""
        return self._lines(rest.splitlines()) if rest else []

    def _lines(self, lines: list[bytes]) -> list[tuple[str | None, str]]:
        events = []
        for raw in lines:
            line = raw.decode("utf-8")
            if not line:
                if not self._event and not self._data and not self._last_event_id and self._retry is None:
                    continue
                events.append((self._event or None, "\n".join(self._data)))
                self._event, self._data, self._retry = None, [], None  # the last event id stays (SSE spec)
                continue
            if line[0] == ":":
                continue
            field, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if field == "data":
                self._data.append(value)
            elif field == "event":
                self._event = value
            elif field == "id":
                if "\0" not in value:
                    self._last_event_id = value
            elif field == "retry":
                try:
                    self._retry = int(value)
                except (TypeError, ValueError):
                    pass
        return events


class StreamError(Exception):
    """An error object the provider sent inside the stream (the SDK raises it as its APIError)."""


def _payloads(event: str | None, data: str) -> Any:
    """A chunk's parsed payload, or StreamError, as the SDK's AsyncStream (legacy mode) treats it."""
    payload = json.loads(data)
    if event and event.startswith("thread."):
        if event == "error" and isinstance(payload, dict) and payload.get("error"):
            raise StreamError(_stream_error_message(payload))
        return {"data": payload, "event": event}
    if isinstance(payload, dict) and payload.get("error"):
        raise StreamError(_stream_error_message(payload))
    return payload


def _stream_error_message(payload: dict) -> str:
    error = payload.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return message


# --- the HTTP route ----------------------------------------------------------------------


class ProviderStatusError(Exception):
    """A non-2xx answer; `response` (read) is what chat.agents.retry reads Retry-After from."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.status_code = response.status_code
        super().__init__(f"Error code: {response.status_code} - {response.text.strip()}")


class ProviderConnectionError(Exception):
    """The request or the stream failed below HTTP (the SDK's APIConnectionError / APITimeoutError)."""


class _Route:
    """Where and how one shared SDK client sends a chat-completions request: its HTTP client and
    pool, and the URL, headers and timeout the SDK builds for that client (the same every call)."""

    __slots__ = ("client", "http", "url", "headers", "extensions", "__weakref__")

    def __init__(self, client: Any, template: Any) -> None:
        self.client = client  # held weakly by _routes' key; the route lives as long as the client
        self.http = client._client
        self.url = template.url
        self.headers = [(k, v) for k, v in template.headers.multi_items() if k.lower() != "content-length"]
        self.extensions = dict(template.extensions)

    def request(self, body: bytes) -> Any:
        import httpx2

        return httpx2.Request("POST", self.url, headers=self.headers, content=body, extensions=dict(self.extensions))


_routes: weakref.WeakKeyDictionary[Any, _Route | None] = weakref.WeakKeyDictionary()


def _authenticates_simply(client: Any) -> bool:
    """Whether the SDK client's auth is a static key in its headers (what _Route reproduces)."""
    return (getattr(client, "_provider_runtime", None) is None and getattr(client, "_api_key_provider", None) is None
            and getattr(client, "_workload_identity_auth", None) is None and client.custom_auth is None
            and not client.default_query)


async def _route(client: Any) -> _Route | None:
    """The route of a shared SDK client (built once per client), or None: leave it to the SDK."""
    try:
        return _routes[client]
    except KeyError:
        pass
    route = None
    if _authenticates_simply(client):
        from openai._models import FinalRequestOptions

        options = FinalRequestOptions.construct(method="post", url="/chat/completions", json_data={},
                                                security={"bearer_auth": True})
        options = await client._prepare_options(options)
        route = _Route(client, client._build_request(options))
    _routes[client] = route
    return route


async def _stream(route: _Route, body: bytes) -> AsyncIterator[Any]:
    """The parsed chunks of one streamed call, as the SDK's AsyncStream yields them (up to [DONE])."""
    from openai._httpx2 import request_exceptions, timeout_exceptions

    timeouts, failures = timeout_exceptions(), request_exceptions()
    try:
        response = await route.http.send(route.request(body), stream=True)
    except timeouts as error:
        raise ProviderConnectionError("Request timed out.") from error
    except failures as error:
        raise ProviderConnectionError("Connection error.") from error
    try:
        if not response.is_success:
            await response.aread()
            raise ProviderStatusError(response)
        decoder = SseDecoder()
        pieces = response.aiter_bytes()
        try:
            async for piece in pieces:
                for event, data in decoder.feed(piece):
                    if data.startswith("[DONE]"):
                        if response.http_version == "HTTP/1.1":
                            await _drain(pieces, failures)
                        return
                    yield _payloads(event, data)
            for event, data in decoder.finish():
                if data.startswith("[DONE]"):
                    return
                yield _payloads(event, data)
        except timeouts as error:
            raise ProviderConnectionError("Request timed out.") from error
        except failures as error:
            raise ProviderConnectionError("Connection error.") from error
    finally:
        await response.aclose()


async def _drain(pieces: AsyncIterator[bytes], failures: tuple) -> None:
    """Read what follows [DONE] (HTTP/1.1 keeps the connection only if the body was read to its end)."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in pieces:
                pass
    except (TimeoutError, *failures):
        pass


async def _complete(route: _Route, body: bytes) -> Any:
    """The answer of one non-streamed call as the SDK's `chat.completions.create` returns it: a
    `ChatCompletion` built by the SDK client's own `_process_response_data` from the JSON body, or
    the body's text when it is not JSON and says so (the SDK's `_parse`)."""
    from openai._httpx2 import request_exceptions, timeout_exceptions
    from openai.types.chat import ChatCompletion

    timeouts, failures = timeout_exceptions(), request_exceptions()
    try:
        response = await route.http.send(route.request(body))
    except timeouts as error:
        raise ProviderConnectionError("Request timed out.") from error
    except failures as error:
        raise ProviderConnectionError("Connection error.") from error
    if not response.is_success:
        raise ProviderStatusError(response)
    content_type, *_ = response.headers.get("content-type", "*").split(";")
    if content_type.endswith("json"):
        data = response.json()
    else:
        try:
            data = response.json()
        except Exception:  # noqa: BLE001 - as the SDK: not JSON, the text is the answer
            return response.text
    return route.client._process_response_data(data=data, cast_to=ChatCompletion, response=response)


# --- the model mixin ---------------------------------------------------------------------


def _encode(body: dict) -> bytes:
    from openai._utils._json import openapi_dumps

    return openapi_dumps(body)


class LeanStreaming:
    """Mixin for agno's OpenAIChat / OpenAILike (under chat.agents.retry.ResilientModel):
    `ainvoke_stream` without the openai SDK's per-call work, or the SDK's when it must."""

    async def ainvoke_stream(self, messages, assistant_message, response_format=None, tools=None, tool_choice=None,
                             run_response=None, compress_tool_results: bool = False) -> AsyncIterator[Any]:
        """agno's OpenAIChat.ainvoke_stream (agno 3.1.10): the same deltas and errors, by the lean route."""
        route = None
        params = None
        if settings.CIRKELLINE_MODEL_CLIENT == "lean":
            params = self.get_request_params(  # type: ignore[attr-defined]
                response_format=response_format, tools=tools, tool_choice=tool_choice, run_response=run_response)
            if not _SDK_ONLY_PARAMS.intersection(params):
                route = await _route(self.get_async_client())  # type: ignore[attr-defined]
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
        try:
            assistant_message.metrics.start_timer()
            body = {
                "model": self.id,  # type: ignore[attr-defined]
                "messages": self._format_all_messages(messages, compress_tool_results),  # type: ignore[attr-defined]
                "stream": True,
                "stream_options": {"include_usage": True},
                **params,
            }
            parse = self._parse_provider_response_delta  # type: ignore[attr-defined]
            # aclosing: a consumer that stops early (a cancelled run) closes the HTTP stream now.
            async with contextlib.aclosing(_stream(route, _encode(body))) as chunks:
                async for data in chunks:
                    yield parse(as_chunk(data))
            assistant_message.metrics.stop_timer()
        except ProviderStatusError as error:
            raise self._status_error(error) from error
        except ProviderConnectionError as error:
            log_error(f"API connection error from OpenAI API: {error}")
            raise ModelProviderError(message=str(error), model_name=self.name, model_id=self.id) from error  # type: ignore[attr-defined]
        except ModelAuthenticationError as error:
            log_error(f"Model authentication error from OpenAI API: {error}")
            raise
        except Exception as error:
            log_error(f"Error from OpenAI API: {error}")
            raise ModelProviderError(message=str(error), model_name=self.name, model_id=self.id) from error  # type: ignore[attr-defined]

    async def ainvoke(self, messages, assistant_message, response_format=None, tools=None, tool_choice=None,
                      run_response=None, compress_tool_results: bool = False) -> Any:
        """agno's OpenAIChat.ainvoke (agno 3.1.10) by the lean route: the request without the SDK's
        per-call building, the answer made into the SDK's `ChatCompletion` by the SDK's own code
        (`_complete`), then agno's `_parse_provider_response`; the same errors."""
        route = None
        params = None
        if settings.CIRKELLINE_MODEL_CLIENT == "lean":
            params = self.get_request_params(  # type: ignore[attr-defined]
                response_format=response_format, tools=tools, tool_choice=tool_choice, run_response=run_response)
            if not _SDK_ONLY_PARAMS.intersection(params):
                route = await _route(self.get_async_client())  # type: ignore[attr-defined]
        if route is None:
            return await super().ainvoke(  # type: ignore[misc]
                messages=messages, assistant_message=assistant_message, response_format=response_format,
                tools=tools, tool_choice=tool_choice, run_response=run_response,
                compress_tool_results=compress_tool_results,
            )
        try:
            assistant_message.metrics.start_timer()
            body = {
                "model": self.id,  # type: ignore[attr-defined]
                "messages": self._format_all_messages(messages, compress_tool_results),  # type: ignore[attr-defined]
                **params,
            }
            response = await _complete(route, _encode(body))
            assistant_message.metrics.stop_timer()
            return self._parse_provider_response(response, response_format=response_format)  # type: ignore[attr-defined]
        except ProviderStatusError as error:
            raise self._status_error(error) from error
        except ProviderConnectionError as error:
            log_error(f"API connection error from OpenAI API: {error}")
            raise ModelProviderError(message=str(error), model_name=self.name, model_id=self.id) from error  # type: ignore[attr-defined]
        except ModelAuthenticationError as error:
            log_error(f"Model authentication error from OpenAI API: {error}")
            raise
        except Exception as error:
            log_error(f"Error from OpenAI API: {error}")
            raise ModelProviderError(message=str(error), model_name=self.name, model_id=self.id) from error  # type: ignore[attr-defined]

    def _status_error(self, error: ProviderStatusError) -> ModelProviderError:
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
