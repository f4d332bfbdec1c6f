"""A deterministic, offline agno Model.

`ScriptedModel` behaves like a provider from agno's point of view: it streams text deltas,
emits tool calls (so a team leader really delegates to members), reports token usage, waits
with `asyncio.sleep` to simulate provider latency, and can be told to fail. What it says is
decided by a *script*: a function from the call it receives to a `Turn`.

It serves three purposes:
- the offline `demo` model (`CIRKELLINE_MODEL=demo`, the default without keys), with the
  script of chat.agents.demo;
- tests, which swap scripts, inject failures and read what each call saw (`CallRecorder`);
- benchmarks, where `latency` stands in for a provider's response time.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from agno.exceptions import ModelProviderError
from agno.metrics import MessageMetrics
from agno.models.base import Model
from agno.models.message import Message
from agno.models.response import ModelResponse

from chat.context import current_run

from .runtime import DELEGATE_TOOL

_MEMBER_RE = re.compile(r'<member id="([^"]+)" name="([^"]+)"')


# --- what a call sees and what a script returns ------------------------------------------


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class Turn:
    """One model response: text, or tool calls (then agno runs them and calls again)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    # A cost (USD) the "provider" reports with its usage, as OpenRouter-style APIs do; None: none.
    cost: float | None = None


@dataclass
class ScriptedCall:
    """The parts of a provider request a script decides on, also kept by the recorder."""

    model_label: str
    run_id: str | None
    parent_run_id: str | None
    # The Cirkelline team run this call belongs to (member calls included), when inside one.
    team_run_id: str | None
    system: str
    tool_names: list[str]
    roles: list[str]
    user_text: str
    tool_results: list[str]
    members: list[tuple[str, str]]
    media: dict[str, int]
    stream: bool
    # The usage this call reported (None: it failed before reporting any), so tests know the
    # tokens of every attempt.
    usage: MessageMetrics | None = None
    # The tools whose results are in `tool_results`, in the same order.
    tool_result_names: list[str] = field(default_factory=list)

    @property
    def is_leader(self) -> bool:
        return DELEGATE_TOOL in self.tool_names


Script = Callable[[ScriptedCall], Turn]


class _Shared:
    """Mixin: survives `copy.deepcopy`, so every per-run copy of a model shares the object."""

    def __deepcopy__(self, memo: dict) -> "_Shared":
        return self


class CallRecorder(_Shared):
    """Every call every copy of a scripted model received, in order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[ScriptedCall] = []

    def add(self, call: ScriptedCall) -> None:
        with self._lock:
            self.calls.append(call)

    def for_run(self, run_id: str) -> list[ScriptedCall]:
        """Calls made by the team run `run_id` and by its member runs."""
        with self._lock:
            return [c for c in self.calls if run_id in (c.run_id, c.parent_run_id, c.team_run_id)]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


class FailurePlan(_Shared):
    """Exceptions to raise on upcoming calls, in order; optionally only for one model label."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[tuple[str | None, BaseException, str]] = deque()

    def push(
        self,
        error: BaseException,
        *,
        times: int = 1,
        label: str | None = None,
        when: str = "before",
    ) -> None:
        """Raise `error` on the next `times` matching calls.

        `when="before"`: before anything is streamed; `when="mid-stream"`: after the first
        text delta of a streamed call.
        """
        with self._lock:
            for _ in range(times):
                self._queue.append((label, error, when))

    def take(self, label: str) -> tuple[BaseException, str] | None:
        with self._lock:
            for i, (want, error, when) in enumerate(self._queue):
                if want is None or want == label:
                    del self._queue[i]
                    return error, when
        return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)


# The recorder and failure plan every scripted model built by chat.agents.providers shares, so a test
# sees the calls of the leader and all members in one place.
RECORDER = CallRecorder()
FAILURES = FailurePlan()


def provider_error(status_code: int, message: str = "scripted provider failure") -> ModelProviderError:
    return ModelProviderError(message=f"{message} ({status_code})", status_code=status_code)


# --- the model ---------------------------------------------------------------------------


def _text_of(message: Message) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, default=str)


def estimate_tokens(text: str) -> int:
    """~4 characters per token, at least 1 for non-empty text (deterministic)."""
    return (len(text) + 3) // 4 if text else 0


@dataclass
class ScriptedModel(Model):
    id: str = "scripted"
    name: str | None = "Scripted"
    provider: str | None = "Scripted"

    script: Script | None = None
    # Which agent this model serves ("leader" or a member id), kept on each call record.
    label: str = "model"
    # Seconds before the first delta (the provider's time to first token) ...
    latency: float = 0.0
    # ... and between later deltas.
    chunk_delay: float = 0.0
    chunk_chars: int = 16
    recorder: CallRecorder = field(default_factory=CallRecorder)
    failures: FailurePlan = field(default_factory=FailurePlan)

    def get_provider(self) -> str:
        return self.provider or "Scripted"

    # agno's sync paths are never used by Cirkelline (it only calls arun); they exist because
    # Model declares them abstract.
    def invoke(self, *args: Any, **kwargs: Any) -> ModelResponse:
        raise NotImplementedError("ScriptedModel is async-only: Cirkelline never calls sync team.run()")

    def invoke_stream(self, *args: Any, **kwargs: Any) -> Iterator[ModelResponse]:
        raise NotImplementedError("ScriptedModel is async-only: Cirkelline never calls sync team.run()")

    def _parse_provider_response(self, response: Any, **kwargs: Any) -> ModelResponse:
        return response

    def _parse_provider_response_delta(self, response: Any) -> ModelResponse:
        return response

    # -- the call --------------------------------------------------------------------------

    def _describe(self, messages: list[Message], tools: list[dict] | None, run_response: Any, stream: bool):
        system = "\n".join(_text_of(m) for m in messages if m.role == "system")
        user_indices = [i for i, m in enumerate(messages) if m.role == "user"]
        last_user = user_indices[-1] if user_indices else -1
        user_text = _text_of(messages[last_user]) if last_user >= 0 else ""
        tool_messages = [m for m in messages[last_user + 1 :] if m.role == "tool"]
        tool_results = [_text_of(m) for m in tool_messages]
        media = {}
        if last_user >= 0:
            msg = messages[last_user]
            for kind in ("images", "audio", "videos", "files"):
                items = getattr(msg, kind, None)
                if items:
                    media[kind] = len(items)
        tool_names = []
        for tool in tools or []:
            fn = tool.get("function") if isinstance(tool, dict) else None
            tool_names.append(fn.get("name") if isinstance(fn, dict) else str(tool.get("name", "")))
        ctx = current_run.get()
        return ScriptedCall(
            model_label=self.label,
            run_id=getattr(run_response, "run_id", None),
            parent_run_id=getattr(run_response, "parent_run_id", None),
            team_run_id=ctx.run_id if ctx is not None else None,
            system=system,
            tool_names=tool_names,
            roles=[m.role for m in messages],
            user_text=user_text,
            tool_results=tool_results,
            members=_MEMBER_RE.findall(system),
            media=media,
            stream=stream,
            tool_result_names=[str(m.tool_name or "") for m in tool_messages],
        )

    def _usage(self, messages: list[Message], turn: Turn) -> MessageMetrics:
        prompt = sum(estimate_tokens(_text_of(m)) + 4 for m in messages)
        completion = estimate_tokens(turn.text) + sum(
            estimate_tokens(json.dumps(tc.arguments)) + 8 for tc in turn.tool_calls
        )
        return MessageMetrics(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion,
                              cost=turn.cost)

    def _tool_call_dicts(self, turn: Turn) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": tc.name, "arguments": json.dumps(tc.arguments)},
            }
            for tc in turn.tool_calls
        ]

    def _begin(self, messages, tools, run_response, stream: bool) -> tuple[ScriptedCall, Turn, tuple | None]:
        call = self._describe(messages, tools, run_response, stream)
        self.recorder.add(call)
        failure = self.failures.take(self.label)
        if self.script is None:
            raise ValueError("a ScriptedModel needs a script (the offline demo's is chat.agents.demo.demo_script)")
        turn = self.script(call)
        return call, turn, failure

    async def ainvoke(
        self,
        messages: list[Message],
        assistant_message: Message,
        response_format: Any = None,
        tools: list[dict] | None = None,
        tool_choice: Any = None,
        run_response: Any = None,
        compress_tool_results: bool = False,
    ) -> ModelResponse:
        call, turn, failure = self._begin(messages, tools, run_response, stream=False)
        if assistant_message.metrics is not None:
            assistant_message.metrics.start_timer()
        if self.latency:
            await asyncio.sleep(self.latency)
        if failure is not None:
            raise failure[0]
        response = ModelResponse(role="assistant", content=turn.text or None)
        response.tool_calls = self._tool_call_dicts(turn)
        response.response_usage = call.usage = self._usage(messages, turn)
        if assistant_message.metrics is not None:
            assistant_message.metrics.stop_timer()
        return response

    async def ainvoke_stream(
        self,
        messages: list[Message],
        assistant_message: Message,
        response_format: Any = None,
        tools: list[dict] | None = None,
        tool_choice: Any = None,
        run_response: Any = None,
        compress_tool_results: bool = False,
    ) -> AsyncIterator[ModelResponse]:
        call, turn, failure = self._begin(messages, tools, run_response, stream=True)
        if assistant_message.metrics is not None:
            assistant_message.metrics.start_timer()
        if self.latency:
            await asyncio.sleep(self.latency)
        if failure is not None and failure[1] == "before":
            raise failure[0]
        text = turn.text
        step = max(1, self.chunk_chars)
        for start in range(0, len(text), step):
            if start and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield ModelResponse(role="assistant", content=text[start : start + step])
            if failure is not None:  # mid-stream: after the first delta reached the caller
                raise failure[0]
        if failure is not None:  # mid-stream failure on a call without text
            raise failure[0]
        if turn.tool_calls:
            yield ModelResponse(role="assistant", tool_calls=self._tool_call_dicts(turn))
        call.usage = self._usage(messages, turn)
        yield ModelResponse(response_usage=call.usage)
        if assistant_message.metrics is not None:
            assistant_message.metrics.stop_timer()
