"""agno's Model methods Cirkelline overrides for a retried provider call; pinned by tests/agents/test_agno_drift.py.

Each fixes a bug, and each depends on agno's private code as of the pinned version: the drift
test records that version and a hash of every upstream function's source, and names the
override to re-check when one changes.

- `AgnoModelOverrides.aprocess_response_stream`, a copy of agno's `Model.aprocess_response_stream`
  that also understands `StreamRestart` (a bug fix: a provider call retried after it had streamed
  part of its answer would otherwise leave the partial text in the run's content, so the stored
  answer and the client's stream would hold it twice); with `_restart_run_content`, which resets
  agno's run content through its "fallback model activated" event.
- `AgnoModelOverrides.create_function_call_result`, agno's with one change (a bug fix: a member
  retried after partial output would reach the leader with its discarded text glued in front of
  its answer, and so would the stored tool result and the final answer's token bill).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agno.models.response import ModelResponse, ModelResponseEvent

from chat.context import Discard, RestartedRun, current_run

from .runtime import DELEGATE_TOOL


class StreamRestart(ModelResponse):
    """Marker between two attempts of one streamed provider call: drop what the first streamed."""


_RESET_FIELDS = {
    "response_content": "", "response_reasoning_content": "", "response_redacted_reasoning_content": "",
    "response_citations": None, "response_audio": None, "response_image": None, "response_video": None,
    "response_file": None, "response_provider_data": None, "extra": None,
}


class AgnoModelOverrides:
    """Mixin for an agno Model, under chat.agents.retry.ResilientModel: the overrides above."""

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
        Cirkelline team runs in coordinate mode, chat.agents.team.)
        """
        if success and isinstance(output, str) and function_call.function.name == DELEGATE_TOOL:
            output = _member_answer_once(output)
        return super().create_function_call_result(  # type: ignore[misc]
            function_call, success, output=output, timer=timer, function_execution_result=function_execution_result
        )


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
