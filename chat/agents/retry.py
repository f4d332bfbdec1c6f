"""Cirkelline's one retry layer for every model, and its provider deadlines (`ResilientModel`).

Every model gets exactly this retry layer: agno's own `Model.retries` stays 0 and SDK clients are
built with `max_retries=0` (chat.agents.providers). It retries 408/409/425/429/5xx/529 and
connection errors, honours `Retry-After` / `retry-after-ms`, otherwise waits
`CIRKELLINE_RETRY_DELAY x 2^attempt` with jitter, never past the run's deadline, and records
attempts, back-off and the last failure on the run's `RunContext`. It sees every attempt of every
provider call, so it also bills the attempts agno never reports (`_Attempt`: cut off by a cancel
or a deadline, or broken after they began answering) on the run's `RunContext.cut_calls`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from agno.exceptions import ModelProviderError
from django.conf import settings

from chat.context import CutCall, ProviderFailure, current_run
from chat.observability import hooks

from .chunk_deadline import ChunkDeadline
from .stream_overrides import AgnoModelOverrides, StreamRestart
from .token_estimate import TextCount, delta_text, prompt_tokens

logger = logging.getLogger(__name__)

# Statuses worth another attempt: rate limits, overload and transient server errors.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
RATE_LIMIT_STATUS = frozenset({429, 529})
# Never sleep longer than this for one Retry-After, whatever the provider asks.
MAX_RETRY_AFTER = 60.0


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


USAGE_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
                "cache_write_tokens")


def _ledger_agent(model: Any, run_response: Any) -> str:
    """Whom a call is billed to in the run's ledger: the model's `ledger_agent`, else the agent or
    team whose run made it."""
    return (getattr(model, "ledger_agent", None) or getattr(run_response, "agent_id", None)
            or getattr(run_response, "team_id", None) or "")


class _Attempt:
    """One attempt of a provider call, as the retry layer saw it: what to bill if agno never does.

    agno bills a call through its `ModelRequestCompleted` event, which comes only after a call
    that ended normally. An attempt cut off by a cancel or a deadline, or broken after it began
    answering (then retried or not), has no such event; its provider still had the prompt and
    produced what it streamed. Providers send usage in a stream's last chunk, so such an attempt
    rarely has any: it is billed from a local estimate, marked as estimated.
    """

    def __init__(self, model: Any, args: tuple, kwargs: dict) -> None:
        self.model, self.kwargs = model, kwargs
        self.messages = kwargs.get("messages", args[0] if args else None)
        self.deltas = 0
        self.output = TextCount()
        self.usage: dict[str, int] | None = None  # what the provider reported during the attempt
        self.settled = False  # billed, or left to agno's own event

    def saw(self, delta: Any) -> None:
        self.deltas += 1
        self.output.add(delta_text(delta))
        usage = getattr(delta, "response_usage", None)
        if usage is not None:
            if self.usage is None:
                self.usage = dict.fromkeys(USAGE_FIELDS, 0)
            for name in USAGE_FIELDS:
                self.usage[name] += int(getattr(usage, name, 0) or 0)

    def bill(self, *, calls: int = 1, output: TextCount | None = None) -> None:
        """Record this attempt on the run: the provider's usage if it sent any, else an estimate."""
        self.settled = True
        ctx = current_run.get()
        if ctx is None:
            return
        agent = _ledger_agent(self.model, self.kwargs.get("run_response"))
        if self.usage is not None and calls:
            tokens, estimated = dict(self.usage), False
        else:
            prompt = prompt_tokens(self.messages, self.kwargs.get("tools"))
            completion = (output or self.output).tokens
            tokens = {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}
            estimated = True
        model, provider = str(self.model.id or ""), str(self.model.provider or "")
        ctx.cut_calls.append(CutCall(agent=agent, model=model, provider=provider, tokens=tokens, calls=calls,
                                     estimated=estimated))


class ResilientModel(AgnoModelOverrides):
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
    # Set on a model whose calls agno reports through no event (the memory manager's: it calls
    # its model directly, outside any agent run): this layer bills every call of it, to this
    # agent of the run's ledger (chat.agents.memory).
    ledger_agent: str | None = None

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
        hooks.provider_retry(status_code=failure.status_code, attempt=attempt + 1, delay_s=delay,
                             mid_stream=mid_stream, detail=failure.message)
        await asyncio.sleep(delay)
        return True

    def _first_token_missed(self) -> ModelProviderError:
        ctx = current_run.get()
        if ctx is not None and ctx.abort is not None:
            ctx.timeout_cause = "first_token"
            ctx.abort("timed_out")
        error = ModelProviderError(message="The provider sent nothing before the first-token deadline", status_code=504)
        error.first_token_deadline = True  # counted as a timed-out call where it was raised
        return error

    def _note_provider_cost(self, response: Any, run_response: Any) -> None:
        """Keep a cost the provider reported for a call (OpenRouter-style `usage.cost`) on the run.

        Keyed like the run's ledger (chat.runs.accounting: agent or team id, model id, provider),
        so it lands beside our own cost on that agent x model's ModelCall row.
        """
        cost = getattr(getattr(response, "response_usage", None), "cost", None)
        ctx = current_run.get()
        if cost is None or ctx is None:
            return
        key = (_ledger_agent(self, run_response), str(self.id or ""), str(self.provider or ""))
        ctx.provider_costs[key] = ctx.provider_costs.get(key, Decimal(0)) + Decimal(str(cost))

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            billing = _Attempt(self, args, kwargs)
            try:
                async with asyncio.timeout(settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT):
                    response = await super().ainvoke(*args, **kwargs)  # type: ignore[misc]
            except TimeoutError:
                hooks.provider_call_ended(timed_out=True)
                billing.bill()  # cut off in flight: the provider had the prompt
                raise self._first_token_missed() from None
            except ModelProviderError as error:
                hooks.provider_call_ended(error.status_code)
                if not await self._should_retry(error, attempt, mid_stream=False):
                    raise
                attempt += 1
                continue
            except BaseException:  # cancelled (or crashed) in flight
                billing.bill()
                raise
            hooks.provider_call_ended(ok=True)
            self._note_provider_cost(response, kwargs.get("run_response"))
            if self.ledger_agent is not None:  # no agno event will count this call: bill it here
                billing.saw(response)
                billing.bill()
            elif getattr(response, "response_usage", None) is None:
                # agno's event counts the call, with no tokens: add the estimate
                answer = TextCount()
                answer.add(delta_text(response))
                billing.bill(calls=0, output=answer)
            return response

    async def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        attempt = 0
        while True:
            streamed = 0  # characters of text this attempt has streamed
            produced = False
            billing = _Attempt(self, args, kwargs)
            # The wait for each chunk has its deadline (only the wait counts, not the consumer's time
            # between chunks), all of them on one timer per attempt: chat.agents.chunk_deadline.
            wait, idle = settings.CIRKELLINE_FIRST_TOKEN_TIMEOUT, settings.CIRKELLINE_STREAM_IDLE_TIMEOUT
            deadline = ChunkDeadline()
            stream = super().ainvoke_stream(*args, **kwargs)  # type: ignore[misc]
            try:
                while True:
                    deadline.start(wait)
                    try:
                        try:
                            delta = await anext(stream)
                        finally:
                            timed_out = deadline.stop()
                    except StopAsyncIteration:
                        hooks.provider_call_ended(ok=True)
                        if self.ledger_agent is not None:  # no agno event will count this call
                            billing.bill()
                        elif billing.usage is None:  # agno's event counts the call, with no tokens
                            billing.bill(calls=0)
                        billing.settled = True
                        return
                    except (asyncio.CancelledError, TimeoutError) as ended:
                        if not timed_out and isinstance(ended, asyncio.CancelledError):
                            raise  # a cancel from outside (the run stopped), not the deadline's
                        if not produced:
                            hooks.provider_call_ended(timed_out=True)
                            raise self._first_token_missed() from None
                        raise ModelProviderError(message="The provider stopped sending mid-answer") from None
                    billing.saw(delta)
                    if getattr(delta, "response_usage", None) is not None:
                        self._note_provider_cost(delta, kwargs.get("run_response"))
                    content = getattr(delta, "content", None)
                    if content or getattr(delta, "tool_calls", None):
                        produced, wait = True, idle
                        if isinstance(content, str):
                            streamed += len(content)
                    yield delta
            except ModelProviderError as error:
                cut = getattr(error, "first_token_deadline", False)
                if not cut:  # that one was counted as timed out
                    hooks.provider_call_ended(error.status_code)
                # Billed before any wait for a retry: a cancel during the back-off must not lose it.
                # An attempt that had begun answering (or that the deadline cut off) consumed its
                # prompt; one refused outright did not. Usage the provider did send stays with
                # agno's event for the call, unless no attempt follows to carry it.
                answered = (billing.usage is None or self.ledger_agent is not None) and (billing.deltas or cut)
                if answered:
                    billing.bill()
                billing.settled = True
                if not await self._should_retry(error, attempt, mid_stream=produced):
                    if billing.usage is not None and not answered:
                        billing.bill()
                    raise
                if produced:
                    yield StreamRestart(extra={"discarded_characters": streamed})
                attempt += 1
            finally:
                deadline.close()
                if not billing.settled:  # cancelled (or crashed) in flight or mid-answer
                    billing.bill()
                await stream.aclose()
