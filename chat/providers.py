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
from agno.models.response import ModelResponse, ModelResponseEvent
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import scripted
from .context import Discard, ProviderFailure, RestartedRun, current_run
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


class StreamRestart(ModelResponse):
    """Marker between two attempts of one streamed provider call: drop what the first streamed."""


_RESET_FIELDS = {
    "response_content": "", "response_reasoning_content": "", "response_redacted_reasoning_content": "",
    "response_citations": None, "response_audio": None, "response_image": None, "response_video": None,
    "response_file": None, "response_provider_data": None, "extra": None,
}


class ResilientModel:
    """Mixin for an agno Model: Cirkelline's one retry layer and its provider deadlines.

    - Retries 408/409/425/429/5xx/529 and connection errors, honouring Retry-After, with
      jittered exponential back-off, never past the run's deadline.
    - A retry is silent while nothing of that call has been streamed. If output had already
      gone out, agno's accumulated text for the call is reset (so the stored answer is not
      doubled) and the run service tells the client to discard that partial output.
    - A call that sends nothing within CIRKELLINE_FIRST_TOKEN_TIMEOUT ends the run as timed out;
      a stream that goes quiet for CIRKELLINE_STREAM_IDLE_TIMEOUT counts as a failed call.
    """

    max_attempts_override: int | None = None

    def _attempts(self) -> int:
        if self.max_attempts_override is not None:
            return self.max_attempts_override
        return settings.CIRKELLINE_MAX_RETRIES + 1

    async def _should_retry(self, error: ModelProviderError, attempt: int, *, mid_stream: bool) -> bool:
        ctx = current_run.get()
        if ctx is not None and ctx.stopping:
            return False  # the run is being stopped (cancel, deadline): no more provider calls
        failure = classify_failure(error, mid_stream=mid_stream)
        if ctx is not None:
            ctx.last_provider_failure = failure
        if not _is_retryable(failure) or attempt + 1 >= self._attempts():
            return False
        delay = _backoff(attempt, failure)
        if ctx is not None:
            if delay >= ctx.seconds_left():
                return False
            ctx.retries += 1
            ctx.backoff_seconds += delay
        logger.info("provider call failed (status %s), retry %d in %.2fs", failure.status_code, attempt + 1, delay)
        await asyncio.sleep(delay)
        return True

    def _first_token_missed(self) -> ModelProviderError:
        ctx = current_run.get()
        if ctx is not None and ctx.abort is not None:
            ctx.timeout_cause = "first_token"
            ctx.abort("timed_out")
        return ModelProviderError(message="The provider sent nothing before the first-token deadline", status_code=504)

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT):
                    return await super().ainvoke(*args, **kwargs)  # type: ignore[misc]
            except TimeoutError:
                raise self._first_token_missed() from None
            except ModelProviderError as error:
                if not await self._should_retry(error, attempt, mid_stream=False):
                    raise
                attempt += 1

    async def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        attempt = 0
        while True:
            streamed = 0  # characters of text this attempt has streamed
            produced = False
            stream = super().ainvoke_stream(*args, **kwargs)  # type: ignore[misc]
            try:
                while True:
                    if produced:
                        wait = settings.CIRKELLINE_STREAM_IDLE_TIMEOUT
                    else:
                        wait = settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT
                    try:
                        async with asyncio.timeout(wait):
                            delta = await anext(stream)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        if not produced:
                            raise self._first_token_missed() from None
                        raise ModelProviderError(message="The provider stopped sending mid-answer") from None
                    content = getattr(delta, "content", None)
                    if content or getattr(delta, "tool_calls", None):
                        produced = True
                        if isinstance(content, str):
                            streamed += len(content)
                    yield delta
            except ModelProviderError as error:
                if not await self._should_retry(error, attempt, mid_stream=produced):
                    raise
                if produced:
                    yield StreamRestart(extra={"discarded_characters": streamed})
                attempt += 1
            finally:
                await stream.aclose()

    async def _restart_run_content(self, run_response: Any, discarded: int) -> AsyncIterator[Any]:
        """Undo a retried call's partial text in agno's run content and tell the client.

        agno accumulates streamed text on the run as it goes and offers one way to reset it:
        the "fallback model activated" event, which clears the run's whole content. So the
        client is told to drop all of this run's text so far, and the text earlier calls of
        the run produced is sent again as one delta before the retry's text.
        """
        content = getattr(run_response, "content", None)
        content = content if isinstance(content, str) else ""
        kept = content[: max(0, len(content) - discarded)]
        ctx = current_run.get()
        if ctx is not None:
            run_id = getattr(run_response, "run_id", None)
            ctx.discards.append(Discard(run_id=run_id, agent_id=getattr(run_response, "agent_id", None),
                                        characters=len(content)))
            if run_id and run_id != ctx.run_id:  # a member run: see create_function_call_result
                ctx.restarted_runs.setdefault(run_id, RestartedRun(run_response)).discarded += len(content)
        yield ModelResponse(event=ModelResponseEvent.fallback_model_activated.value)
        if kept:
            yield ModelResponse(role="assistant", content=kept)

    async def aprocess_response_stream(
        self,
        messages,
        assistant_message,
        stream_data,
        response_format=None,
        tools=None,
        tool_choice=None,
        run_response=None,
        compress_tool_results: bool = False,
    ) -> AsyncIterator[Any]:
        """agno's Model.aprocess_response_stream (agno 3.1.10), plus handling StreamRestart."""
        async for response_delta in self._ainvoke_stream_with_retry(  # type: ignore[attr-defined]
            messages=messages,
            assistant_message=assistant_message,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice or self._tool_choice,  # type: ignore[attr-defined]
            run_response=run_response,
            compress_tool_results=compress_tool_results,
        ):
            if isinstance(response_delta, StreamRestart):
                for name, value in _RESET_FIELDS.items():
                    setattr(stream_data, name, value)
                stream_data.response_tool_calls = []
                if response_delta.extra["discarded_characters"]:
                    discarded = response_delta.extra["discarded_characters"]
                    async for item in self._restart_run_content(run_response, discarded):
                        yield item
                continue
            if run_response and run_response.metrics:
                run_response.metrics.set_time_to_first_token()
            for model_response_delta in self._populate_stream_data(  # type: ignore[attr-defined]
                stream_data=stream_data, model_response_delta=response_delta
            ):
                yield model_response_delta
        self._populate_assistant_message_from_stream_data(  # type: ignore[attr-defined]
            assistant_message=assistant_message, stream_data=stream_data
        )

    def create_function_call_result(self, function_call, success, output=None, timer=None,
                                    function_execution_result=None):
        """agno's Model.create_function_call_result (agno 3.1.10), handing a retried member's
        answer to the leader once.

        agno's result of `delegate_task_to_member` is every content delta the member streamed,
        concatenated (Model.arun_function_calls); for a member retried after partial output that
        is the discarded text followed by the answer. Such an output is exactly the characters
        the member discarded plus its final answer, and then the answer alone is the result.
        (Broadcast mode, `delegate_task_to_members`, interleaves several members' deltas; the
        Cirkelline team runs in coordinate mode, chat.team.)
        """
        if success and isinstance(output, str) and function_call.function.name == DELEGATE_TOOL:
            output = _member_answer_once(output)
        return super().create_function_call_result(  # type: ignore[misc]
            function_call, success, output=output, timer=timer, function_execution_result=function_execution_result
        )


DELEGATE_TOOL = "delegate_task_to_member"


def _member_answer_once(output: str) -> str:
    ctx = current_run.get()
    if ctx is None or not ctx.restarted_runs:
        return output
    for run_id, restarted in list(ctx.restarted_runs.items()):
        answer = getattr(restarted.output, "content", None)
        if isinstance(answer, str) and len(output) == restarted.discarded + len(answer) and output.endswith(answer):
            del ctx.restarted_runs[run_id]
            return answer
    return output


# --- shared SDK clients ------------------------------------------------------------------

# Every run builds its own Model objects; without sharing, each would build (and leak) its own
# SDK client and connection pool. Clients are shared per event loop and configuration (spread
# over CIRKELLINE_PROVIDER_CLIENTS shards); SDK clients are safe for concurrent requests.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def _loop_clients() -> dict:
    loop = asyncio.get_running_loop()
    bucket = _clients.get(loop)
    if bucket is None:
        bucket = _clients[loop] = {}
    return bucket


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
