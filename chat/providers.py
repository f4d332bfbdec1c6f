"""Model factory: `CIRKELLINE_MODEL=provider:model_id` -> an agno Model.

| CIRKELLINE_MODEL            | model                                                         |
|-----------------------------|---------------------------------------------------------------|
| (empty)                     | Gemini if a Google key is set, else OpenAI if an OpenAI key is |
|                             | set, else `demo`                                               |
| `google:<id>`               | agno `Gemini` (GOOGLE_API_KEY or GEMINI_API_KEY)              |
| `openai:<id>`               | agno `OpenAIChat` (OPENAI_API_KEY)                            |
| `openai-responses:<id>`     | agno `OpenAIResponses` (OPENAI_API_KEY)                       |
| `openai-like:<id>`          | agno `OpenAILike` at CIRKELLINE_MODEL_BASE_URL (vLLM, LM Studio, |
|                             | llama.cpp server, Ollama, the test fake provider, ...)         |
| `ollama:<id>`               | Ollama's OpenAI-compatible API (default http://127.0.0.1:11434/v1) |
| `llama-cpp:<id>`            | llama.cpp `llama-server` (default http://127.0.0.1:8080/v1)   |
| `demo`                      | the offline demo (chat.scripted.demo_script)                  |
| `scripted`                  | the scripted model, CIRKELLINE_SCRIPTED_LATENCY s per call    |

Every model gets exactly one retry layer: Cirkelline's (`ResilientModel`). agno's own
`Model.retries` stays 0 and SDK clients are built with `max_retries=0`.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import random
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agno.exceptions import ModelProviderError
from agno.models.base import Model
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import scripted
from .runctx import ProviderFailure, current_run
from .scripted import ScriptedModel, demo_script

logger = logging.getLogger(__name__)

# Statuses worth another attempt: rate limits, overload and transient server errors.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
RATE_LIMIT_STATUS = frozenset({429, 529})
# Never sleep longer than this for one Retry-After, whatever the provider asks.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class ModelSpec:
    provider: str
    model_id: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model_id}" if self.model_id else self.provider


def model_spec() -> ModelSpec:
    """The configured model, with the documented defaults applied."""
    raw = settings.CIRKELLINE_MODEL.strip()
    if not raw:
        if settings.GOOGLE_API_KEY:
            return ModelSpec("google", "gemini-2.5-flash")
        if settings.OPENAI_API_KEY:
            return ModelSpec("openai", "gpt-4.1-mini")
        return ModelSpec("demo", "")
    provider, _, model_id = raw.partition(":")
    provider = provider.strip().lower()
    if provider not in _BUILDERS:
        raise ImproperlyConfigured(
            f"CIRKELLINE_MODEL={raw!r}: unknown provider {provider!r}; use one of {', '.join(sorted(_BUILDERS))}"
        )
    if provider not in ("demo", "scripted") and not model_id.strip():
        raise ImproperlyConfigured(f"CIRKELLINE_MODEL={raw!r}: give a model id, e.g. {provider}:<model>")
    return ModelSpec(provider, model_id.strip())


# --- the retry layer ---------------------------------------------------------------------


def _retry_after(error: BaseException) -> float | None:
    """Seconds from a Retry-After / retry-after-ms header on the SDK error behind `error`."""
    seen = 0
    exc: BaseException | None = error
    while exc is not None and seen < 5:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            try:
                ms = headers.get("retry-after-ms")
                if ms is not None:
                    return max(0.0, float(ms) / 1000.0)
                value = headers.get("retry-after")
                if value is not None:
                    try:
                        return max(0.0, float(value))
                    except ValueError:
                        parsed = email.utils.parsedate_to_datetime(value)
                        return max(0.0, parsed.timestamp() - time.time())
            except (TypeError, ValueError, AttributeError):
                return None
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def classify_failure(error: ModelProviderError, *, mid_stream: bool = False) -> ProviderFailure:
    status = getattr(error, "status_code", None)
    return ProviderFailure(
        status_code=status,
        message=str(getattr(error, "message", "") or error)[:500],
        retry_after=_retry_after(error),
        mid_stream=mid_stream,
    )


def _is_retryable(failure: ProviderFailure) -> bool:
    # agno maps connection errors to ModelProviderError with its default status 502.
    return failure.status_code is None or failure.status_code in RETRYABLE_STATUS


def _backoff(attempt: int, failure: ProviderFailure) -> float:
    if failure.retry_after is not None:
        return min(failure.retry_after, MAX_RETRY_AFTER)
    base = settings.CIRKELLINE_RETRY_DELAY * (2**attempt)
    return base * random.uniform(0.75, 1.25)  # jitter: clients that failed together spread out


class ResilientModel:
    """Mixin for an agno Model: Cirkelline's one retry layer, reporting to the current run.

    A retry is silent only while nothing from that provider call has been streamed; after
    output has gone out the failure is raised (and reported as a provider error) rather than
    replayed, so a client never sees duplicated text. Retries stop at the run's deadline.
    """

    max_attempts_override: int | None = None

    def _attempts(self) -> int:
        if self.max_attempts_override is not None:
            return self.max_attempts_override
        return settings.CIRKELLINE_MAX_RETRIES + 1

    async def _should_retry(self, error: ModelProviderError, attempt: int, *, mid_stream: bool) -> bool:
        failure = classify_failure(error, mid_stream=mid_stream)
        ctx = current_run.get()
        if ctx is not None:
            ctx.last_provider_failure = failure
        if mid_stream or not _is_retryable(failure) or attempt + 1 >= self._attempts():
            return False
        delay = _backoff(attempt, failure)
        if ctx is not None:
            if delay >= ctx.seconds_left():
                return False
            ctx.retries += 1
            ctx.backoff_seconds += delay
        logger.info(
            "provider call failed (status %s), retry %d in %.2fs",
            failure.status_code,
            attempt + 1,
            delay,
        )
        await asyncio.sleep(delay)
        return True

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return await super().ainvoke(*args, **kwargs)  # type: ignore[misc]
            except ModelProviderError as error:
                if not await self._should_retry(error, attempt, mid_stream=False):
                    raise
                attempt += 1

    async def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        attempt = 0
        while True:
            streamed = False
            try:
                async for delta in super().ainvoke_stream(*args, **kwargs):  # type: ignore[misc]
                    if getattr(delta, "content", None) or getattr(delta, "tool_calls", None):
                        streamed = True
                    yield delta
                return
            except ModelProviderError as error:
                if not await self._should_retry(error, attempt, mid_stream=streamed):
                    raise
                attempt += 1


# --- shared SDK clients ------------------------------------------------------------------

# agno's Model.__deepcopy__ drops SDK clients, so every per-run team copy would build (and
# leak) its own connection pool. One client per event loop and configuration is shared
# instead; SDK clients are safe for concurrent requests on one loop.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def _loop_clients() -> dict:
    loop = asyncio.get_running_loop()
    bucket = _clients.get(loop)
    if bucket is None:
        bucket = _clients[loop] = {}
    return bucket


def _shared_client(key: tuple, factory: Any) -> Any:
    try:
        bucket = _loop_clients()
    except RuntimeError:  # no running loop (sync use): no sharing
        return factory()
    client = bucket.get(key)
    if client is None or (hasattr(client, "is_closed") and client.is_closed()):
        client = bucket[key] = factory()
    return client


@functools.cache
def _openai_classes():
    from agno.models.openai import OpenAIChat, OpenAILike, OpenAIResponses
    from openai import AsyncOpenAI

    class _SharedAsyncClient:
        def get_async_client(self):  # noqa: D401 - agno API
            params = self._get_client_params()
            key = ("openai", tuple(sorted((k, repr(v)) for k, v in params.items())))
            client = _shared_client(key, lambda: AsyncOpenAI(**params))
            self.async_client = client
            return client

    class CirkellineOpenAIChat(ResilientModel, _SharedAsyncClient, OpenAIChat):
        pass

    class CirkellineOpenAILike(ResilientModel, _SharedAsyncClient, OpenAILike):
        pass

    class CirkellineOpenAIResponses(ResilientModel, _SharedAsyncClient, OpenAIResponses):
        pass

    return CirkellineOpenAIChat, CirkellineOpenAILike, CirkellineOpenAIResponses


@functools.cache
def _gemini_class():
    from agno.models.google import Gemini

    class CirkellineGemini(ResilientModel, Gemini):
        def get_client(self):
            if self.client:
                return self.client
            key = ("gemini", self.id, self.api_key, self.vertexai, self.project_id, self.location, self.timeout)
            build = super().get_client
            self.client = _shared_client(key, build)
            return self.client

    return CirkellineGemini


class ResilientScriptedModel(ResilientModel, ScriptedModel):
    """The scripted model behind the same retry layer as real providers (for fault tests)."""


# --- builders ----------------------------------------------------------------------------


def _openai_common(**extra: Any) -> dict[str, Any]:
    return {"max_retries": 0, "timeout": settings.CIRKELLINE_MODEL_TIMEOUT, **extra}


def _build_google(spec: ModelSpec, label: str) -> Model:
    if not settings.GOOGLE_API_KEY:
        raise ImproperlyConfigured("CIRKELLINE_MODEL uses google: but neither GOOGLE_API_KEY nor GEMINI_API_KEY is set")
    return _gemini_class()(id=spec.model_id, api_key=settings.GOOGLE_API_KEY, timeout=settings.CIRKELLINE_MODEL_TIMEOUT)


def _build_openai(spec: ModelSpec, label: str) -> Model:
    if not settings.OPENAI_API_KEY:
        raise ImproperlyConfigured("CIRKELLINE_MODEL uses openai: but OPENAI_API_KEY is not set")
    chat, _, _ = _openai_classes()
    return chat(id=spec.model_id, api_key=settings.OPENAI_API_KEY, **_openai_common())


def _build_openai_responses(spec: ModelSpec, label: str) -> Model:
    if not settings.OPENAI_API_KEY:
        raise ImproperlyConfigured("CIRKELLINE_MODEL uses openai-responses: but OPENAI_API_KEY is not set")
    _, _, responses = _openai_classes()
    return responses(id=spec.model_id, api_key=settings.OPENAI_API_KEY, **_openai_common())


def _openai_compatible(default_base_url: str | None):
    def build(spec: ModelSpec, label: str) -> Model:
        base_url = settings.CIRKELLINE_MODEL_BASE_URL or default_base_url
        if not base_url:
            raise ImproperlyConfigured(
                f"CIRKELLINE_MODEL={spec}: set CIRKELLINE_MODEL_BASE_URL to the server's /v1 URL"
            )
        _, like, _ = _openai_classes()
        return like(
            id=spec.model_id,
            name="OpenAILike",
            provider=spec.provider,
            base_url=base_url,
            api_key=settings.CIRKELLINE_MODEL_API_KEY or "not-needed",
            **_openai_common(),
        )

    return build


def _build_demo(spec: ModelSpec, label: str) -> Model:
    # A short pause per delta so the demo visibly streams.
    return ResilientScriptedModel(
        id="cirkelline-demo", name="Demo", provider="Cirkelline demo", label=label, script=demo_script,
        latency=0.05, chunk_delay=0.02, chunk_chars=12, recorder=scripted.RECORDER, failures=scripted.FAILURES,
    )


def _build_scripted(spec: ModelSpec, label: str) -> Model:
    return ResilientScriptedModel(
        id=spec.model_id or "scripted", label=label, script=demo_script, latency=settings.CIRKELLINE_SCRIPTED_LATENCY,
        recorder=scripted.RECORDER, failures=scripted.FAILURES,
    )


_BUILDERS = {
    "google": _build_google,
    "gemini": _build_google,
    "openai": _build_openai,
    "openai-responses": _build_openai_responses,
    "openai-like": _openai_compatible(None),
    "ollama": _openai_compatible("http://127.0.0.1:11434/v1"),
    "llama-cpp": _openai_compatible("http://127.0.0.1:8080/v1"),
    "demo": _build_demo,
    "scripted": _build_scripted,
}


def build_model(label: str, spec: ModelSpec | None = None) -> Model:
    """A model for one agent of the team (`label` is "leader" or a member id)."""
    spec = spec or model_spec()
    return _BUILDERS[spec.provider](spec, label)
