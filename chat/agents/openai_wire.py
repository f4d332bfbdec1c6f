"""The lean path's wire: how a shared SDK client's chat-completions request is sent, and its SSE read.

chat.agents.openai_lean sends agno's provider calls without the openai SDK's per-call work; this
module is the part below the JSON: the route of one shared SDK client (`route`: the URL, headers
and timeout the SDK computes once for that client), and sending one request by it, streamed
(`stream`, its SSE read by chat.agents.sse_decoding) or not (`complete`).

A request goes one of two ways, with the same outcome (tests/agents/test_provider_http.py):

- through the SDK client's httpx2 client (`http.send`), as the SDK itself sends it;
- directly on the aiohttp session under it, when the client's transport is the SDK's own aiohttp
  transport (CIRKELLINE_PROVIDER_HTTP=aiohttp, chat.agents.shared_clients) with no proxy: the
  same method, URL, headers and body, aiohttp's exceptions mapped by the SDK's own table
  (`map_aiohttp_exceptions`) to the httpx2 exceptions the first way raises, and a non-2xx answer
  made into an httpx2 Response as the transport would make it. This skips httpx2's request and
  response objects, its header models and its stream wrappers on every call and every chunk
  (docs/PERFORMANCE.md). A redirect answer is sent again the first way, which follows it as the
  SDK does.

Failures come out as `ProviderStatusError` (a non-2xx answer, read) or `ProviderConnectionError`
(below HTTP, the SDK's APIConnectionError / APITimeoutError), which the model mixin turns into
agno's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Any

from .sse_decoding import SseDecoder, payloads

_DRAIN_SECONDS = 0.1  # as the SDK: how long the rest of a body may take after [DONE]
_AIOHTTP_TRANSPORT = ("openai._vendor.httpx_aiohttp.transport", "AiohttpTransport")


# --- the HTTP route ----------------------------------------------------------------------


class ProviderStatusError(Exception):
    """A non-2xx answer; `response` (read) is what chat.agents.retry reads Retry-After from."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.status_code = response.status_code
        super().__init__(f"Error code: {response.status_code} - {response.text.strip()}")


class ProviderConnectionError(Exception):
    """The request or the stream failed below HTTP (the SDK's APIConnectionError / APITimeoutError)."""


class Route:
    """Where and how one shared SDK client sends a chat-completions request: its HTTP client and
    pool, and the URL, headers and timeout the SDK builds for that client (the same every call);
    `aiohttp`: the client's aiohttp transport when requests may go directly on its session."""

    __slots__ = ("client", "http", "url", "headers", "extensions", "aiohttp", "aio_url", "aio_timeout",
                 "__weakref__")

    def __init__(self, client: Any, template: Any) -> None:
        self.client = client  # held weakly by _routes' key; the route lives as long as the client
        self.http = client._client
        self.url = template.url
        self.headers = [(k, v) for k, v in template.headers.multi_items() if k.lower() != "content-length"]
        self.extensions = dict(template.extensions)
        self.aiohttp = _direct_aiohttp(self.http)
        if self.aiohttp is not None:
            import aiohttp
            import yarl

            timeout = self.extensions.get("timeout", {})
            self.aio_url = yarl.URL(str(self.url), encoded=True)
            # As the SDK's transport sets it per request.
            self.aio_timeout = aiohttp.ClientTimeout(sock_connect=timeout.get("connect"),
                                                     sock_read=timeout.get("read"), connect=timeout.get("pool"))

    def request(self, body: bytes) -> Any:
        import httpx2

        return httpx2.Request("POST", self.url, headers=self.headers, content=body, extensions=dict(self.extensions))

    def session(self) -> Any:
        """The aiohttp session under the SDK client (made as its transport makes it on first use)."""
        from aiohttp import ClientSession

        transport = self.aiohttp
        if not isinstance(transport.client, ClientSession):
            transport.client = transport.get_client()
        return transport.client


def _direct_aiohttp(http: Any) -> Any:
    """The SDK's aiohttp transport of an httpx2 client, when requests may skip httpx2: no proxy
    (a proxied client keeps httpx2's mounts), no event hooks; else None."""
    transport = getattr(http, "_transport", None)
    kind = type(transport)
    if (kind.__module__, kind.__name__) != _AIOHTTP_TRANSPORT or getattr(transport, "proxy", None) is not None:
        return None
    if getattr(http, "_mounts", None) or any(getattr(http, "_event_hooks", {}).values()):
        return None
    return transport


_routes: weakref.WeakKeyDictionary[Any, Route | None] = weakref.WeakKeyDictionary()


def _authenticates_simply(client: Any) -> bool:
    """Whether the SDK client's auth is a static key in its headers (what Route reproduces)."""
    return (getattr(client, "_provider_runtime", None) is None and getattr(client, "_api_key_provider", None) is None
            and getattr(client, "_workload_identity_auth", None) is None and client.custom_auth is None
            and not client.default_query)


async def route(client: Any) -> Route | None:
    """The route of a shared SDK client (built once per client), or None: leave it to the SDK."""
    try:
        return _routes[client]
    except KeyError:
        pass
    found = None
    if _authenticates_simply(client):
        from openai._models import FinalRequestOptions

        options = FinalRequestOptions.construct(method="post", url="/chat/completions", json_data={},
                                                security={"bearer_auth": True})
        options = await client._prepare_options(options)
        found = Route(client, client._build_request(options))
    _routes[client] = found
    return found


def _failures() -> tuple[tuple, tuple]:
    from openai._httpx2 import request_exceptions, timeout_exceptions

    return timeout_exceptions(), request_exceptions()


@contextlib.contextmanager
def _below_http(timeouts: tuple, failures: tuple) -> Any:
    """A transport failure as the SDK reports it (its APITimeoutError / APIConnectionError messages)."""
    try:
        yield
    except timeouts as error:
        raise ProviderConnectionError("Request timed out.") from error
    except failures as error:
        raise ProviderConnectionError("Connection error.") from error


@contextlib.contextmanager
def _aiohttp_mapped() -> Any:
    """aiohttp's exceptions as the SDK's aiohttp transport maps them (to httpx2's)."""
    from openai._vendor.httpx_aiohttp.transport import map_aiohttp_exceptions

    with map_aiohttp_exceptions():
        yield


def _aiohttp_errors() -> type[Exception]:
    import aiohttp

    return aiohttp.ClientError


def _is_redirect(status: int, headers: Any) -> bool:
    return 300 <= status < 400 and "location" in headers


async def _aiohttp_send(route: Route, body: bytes) -> Any:
    """The aiohttp response to the request (headers read), sent as the SDK's aiohttp transport
    sends it, except that aiohttp decodes a compressed body itself (no httpx2 Response here to
    do it)."""
    with _aiohttp_mapped():
        return await route.session().request(
            "POST", route.aio_url, headers=route.headers, data=body, allow_redirects=False, compress=False,
            timeout=route.aio_timeout)


async def _as_httpx(route: Any, response: Any, body: bytes) -> Any:
    """An aiohttp answer (read to its end) as the httpx2 Response the SDK's transport would give:
    the same status, headers and bytes (the encoding header dropped: aiohttp decoded the body)."""
    import httpx2

    with _aiohttp_mapped():
        content = await response.read()
    headers = [(k, v) for k, v in response.raw_headers if k.lower() not in (b"content-encoding", b"content-length")]
    extensions = {"http_version": b"HTTP/1.1"}
    if response.reason:
        extensions["reason_phrase"] = response.reason.encode()
    return httpx2.Response(status_code=response.status, headers=headers, content=content,
                           request=route.request(body), extensions=extensions)


async def stream(route: Route, body: bytes) -> AsyncIterator[Any]:
    """The parsed chunks of one streamed call, as the SDK's AsyncStream yields them (up to [DONE])."""
    timeouts, failures = _failures()
    async with _opened(route, body, timeouts, failures) as (pieces, http11, drain_failures):
        decoder = SseDecoder()
        with _below_http(timeouts, failures), _aiohttp_mapped():
            async for piece in pieces:
                for event, data in decoder.feed(piece):
                    if data.startswith("[DONE]"):
                        if http11:
                            await _drain(pieces, drain_failures)
                        return
                    yield payloads(event, data)
        for event, data in decoder.finish():
            if data.startswith("[DONE]"):
                return
            yield payloads(event, data)


@contextlib.asynccontextmanager
async def _opened(route: Route, body: bytes, timeouts: tuple, failures: tuple) -> AsyncIterator[tuple]:
    """A streamed call's answer, its status checked: (its body's pieces, whether HTTP/1.1, what
    reading after [DONE] may raise); closed (or given back to the pool) on the way out."""
    if route.aiohttp is not None:
        with _below_http(timeouts, failures):
            response = await _aiohttp_send(route, body)
        try:
            if not _is_redirect(response.status, response.headers):
                if not 200 <= response.status < 300:
                    raise ProviderStatusError(await _as_httpx(route, response, body))
                yield response.content.iter_any(), response.version == (1, 1), (*failures, _aiohttp_errors())
                return
        finally:
            response.release()  # back to the pool when read to its end; else the connection closes
    with _below_http(timeouts, failures):
        response = await route.http.send(route.request(body), stream=True)
    try:
        if not response.is_success:
            await response.aread()
            raise ProviderStatusError(response)
        yield response.aiter_bytes(), response.http_version == "HTTP/1.1", failures
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


async def complete(route: Route, body: bytes) -> Any:
    """The answer of one non-streamed call as the SDK's `chat.completions.create` returns it: a
    `ChatCompletion` built by the SDK client's own `_process_response_data` from the JSON body, or
    the body's text when it is not JSON and says so (the SDK's `_parse`)."""
    from openai.types.chat import ChatCompletion

    timeouts, failures = _failures()
    response = None
    if route.aiohttp is not None:
        with _below_http(timeouts, failures):
            answer = await _aiohttp_send(route, body)
            try:
                if not _is_redirect(answer.status, answer.headers):
                    response = await _as_httpx(route, answer, body)
            finally:
                answer.release()
    if response is None:
        with _below_http(timeouts, failures):
            response = await route.http.send(route.request(body))
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
