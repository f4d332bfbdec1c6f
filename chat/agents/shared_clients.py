"""The provider SDK clients shared per event loop, overriding agno's client getters (drift-tested).

agno's OpenAI models build an SDK client (and connection pool) in `get_async_client` and Gemini in
`get_client`, per Model object; every run builds its own Models, so these overrides hand out one
client per event loop, configuration and shard instead (a saving: "provider calls spread over 8
SDK clients" in docs/PERFORMANCE.md; without it each run would also leak a pool). Every OpenAI
client of the process shares one TLS context (`tls_context`), which the SDK would otherwise build,
certificates loaded, per client. A loop's clients are closed when the loop shuts down, or by
`close_loop_clients`. The overrides depend on agno's private code as of the pinned version: the
drift test records a hash of each upstream function's source and names the override to re-check
when one changes (tests/agents/test_agno_drift.py).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import ssl
import weakref
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from chat.context import current_run

# Every run builds its own Model objects; without sharing, each would build (and leak) its own
# SDK client and connection pool. Clients are shared per event loop and configuration (spread
# over CIRKELLINE_PROVIDER_CLIENTS shards); SDK clients are safe for concurrent requests.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()
_closers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]]" = weakref.WeakKeyDictionary()


def _loop_clients() -> dict:
    loop = asyncio.get_running_loop()
    bucket = _clients.get(loop)
    if bucket is None:
        bucket = _clients[loop] = {}
        # Started now, so that the loop's shutdown_asyncgens (asyncio.run, asyncio.Runner, asgiref,
        # pytest-asyncio) finalizes it: the loop's clients are closed before the loop is.
        closer = _closers[loop] = _close_when_finalized(bucket)
        asyncio.ensure_future(anext(closer))
    return bucket


async def _close_when_finalized(bucket: dict) -> AsyncIterator[None]:
    """Suspended for the life of one event loop; closing it closes that loop's provider clients.

    A client's connections belong to the loop that opened them, and an aiohttp session tells of
    itself when it is collected unclosed (and holds its sockets open until then): each loop's
    clients are closed when the loop shuts down, or when `close_loop_clients` is awaited (a server
    that stops without finalizing its loop's async generators: chat.runs.drain)."""
    try:
        yield
    finally:
        clients = list(bucket.values())
        bucket.clear()
        for client in clients:
            try:
                if inspect.iscoroutinefunction(getattr(client, "close", None)):  # the openai SDK's
                    await client.close()
                elif hasattr(getattr(client, "aio", None), "aclose"):  # google-genai: its async side
                    await client.aio.aclose()
            except Exception:  # noqa: BLE001 - closing is best effort; the loop is ending
                pass


async def close_loop_clients() -> None:
    """Close the running loop's shared provider clients (a later call on this loop builds new ones)."""
    loop = asyncio.get_running_loop()
    closer = _closers.pop(loop, None)
    _clients.pop(loop, None)
    if closer is not None:
        await closer.aclose()


def _shard() -> int:
    """Which of the loop's clients a call uses: spread by run, stable within a run.

    httpcore scans every connection of a pool each time a request starts or a response
    closes, so one pool holding a connection per concurrent stream (hundreds under load) makes
    each request cost O(streams). Several smaller pools keep that scan short, and each pool's
    own connection limit is never what a run ends up waiting for.
    """
    shards = settings.CIRKELLINE_PROVIDER_CLIENTS
    if shards <= 1:
        return 0
    ctx = current_run.get()
    return hash(ctx.run_id) % shards if ctx is not None else random.randrange(shards)


def _shared_client(key: tuple, factory: Any) -> Any:
    try:
        bucket = _loop_clients()
    except RuntimeError:  # no running loop (sync use): no sharing
        return factory()
    key = (*key, _shard())
    client = bucket.get(key)
    if client is None or (hasattr(client, "is_closed") and client.is_closed()):
        client = bucket[key] = factory()
    return client


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for provider HTTP clients, as the SDK would build it.

    The openai SDK builds an HTTP client per SDK client, and each loads the system's CA
    certificates into a context of its own (~20 ms of CPU). Clients are per event loop and
    shard, so that was paid again by every new loop (each test, each worker) even when the
    provider speaks plain http; the context is safe to share (httpcore only reads it, and
    sets the same ALPN protocols on every handshake).
    """
    import httpx2

    return httpx2.create_ssl_context()


@functools.cache
def shared_openai_client() -> type:
    """Mixin for agno's OpenAI models: `get_async_client` hands out the shared client (built on
    first use, so the openai SDK is imported only when an OpenAI model is configured)."""
    from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpxClient

    def build(params: dict) -> Any:
        # The SDK's own HTTP client and defaults (limits, redirects), with the shared TLS context
        # (unless the model brings an HTTP client of its own); its transport per
        # CIRKELLINE_PROVIDER_HTTP (aiohttp: about a quarter of httpcore's CPU per streamed call,
        # docs/PERFORMANCE.md).
        if params.get("http_client") is None:
            http = DefaultAioHttpClient if settings.CIRKELLINE_PROVIDER_HTTP == "aiohttp" else DefaultAsyncHttpxClient
            params = {**params, "http_client": http(verify=tls_context())}
        return AsyncOpenAI(**params)

    class SharedOpenAIClient:
        def get_async_client(self):  # noqa: D401 - agno API
            params = self._get_client_params()
            key = ("openai", tuple(sorted((k, repr(v)) for k, v in params.items())))
            client = _shared_client(key, lambda: build(params))
            self.async_client = client
            return client

    return SharedOpenAIClient


class SharedGeminiClient:
    """Mixin for agno's Gemini: `get_client` hands out the shared client for its configuration."""

    def get_client(self):
        if self.client:
            return self.client
        key = ("gemini", self.id, self.api_key, self.vertexai, self.project_id, self.location, self.timeout)
        build = super().get_client
        self.client = _shared_client(key, build)
        return self.client
