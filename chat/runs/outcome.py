"""How a run ended, in the run service's terms: its `RunResult` (chat.runs.result), the one terminal event clients
receive, and its usage row's fields. Pure functions of the finished run's handle (no I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chat.agents.providers import model_spec
from chat.agents.retry import RATE_LIMIT_STATUS
from chat.agents.runtime import TeamRunEvent, cancelled_event, error_event
from chat.payload import storable
from metrics.models import RunStatus

from .handle import RunHandle
from .result import RunResult
from .teams import team_name

_COMPLETED = TeamRunEvent.run_completed.value
_CANCELLED = TeamRunEvent.run_cancelled.value
_ERROR = TeamRunEvent.run_error.value
_PAUSED = TeamRunEvent.run_paused.value

# A run whose server process died (chat.runs.reaper closes it), and the index of its terminal
# event: its worker's last index is unknown (it may have sent its client events that never
# reached Redis), so the terminal is numbered after any index a run can reach, and a client
# resuming after the last event it had still gets it.
WORKER_LOST = "worker_lost"
LOST_EVENT_INDEX = 1_000_000_000
ERROR_MESSAGES = {
    "timeout": "The run took longer than its deadline and was stopped.",
    "first_token": "The AI provider did not start answering in time, so the run was stopped.",
    "rate_limited": "The AI provider is rate limiting requests right now. Please try again shortly.",
    "provider_error": "The AI provider failed to answer. Please try again.",
    "internal": "Something went wrong while running your request.",
    # The server process running the answer died (chat.runs.reaper); also the stored answer.
    WORKER_LOST: ("This answer was interrupted: the server running it stopped before it finished. Please send "
                  "your message again."),
}


def outcome(handle: RunHandle, output: Any, failure: BaseException | None) -> RunResult:
    """How the run ended (completed, error, rate_limited, timed_out, cancelled, with an error type)."""
    account, ctx = handle.account, handle.ctx
    result = RunResult(run_id=handle.run_id, session_id=handle.session_id, status=RunStatus.COMPLETED,
                       output=output, content=account.partial_content)
    terminal = account.terminal
    name = getattr(terminal, "event", None)
    if handle.abort_reason == RunStatus.TIMED_OUT:
        result.status, result.error_type = RunStatus.TIMED_OUT, "timeout"
        if ctx.timeout_cause == "first_token":
            result.message = ERROR_MESSAGES["first_token"]
    elif handle.abort_reason == RunStatus.ERROR:  # its transport failed sending its events (chat.api.sse)
        result.status, result.error_type = RunStatus.ERROR, "internal"
    elif handle.abort_reason is not None or name == _CANCELLED:
        result.status = RunStatus.CANCELLED
    elif failure is not None:
        result.status, result.error_type = RunStatus.ERROR, "internal"
        result.message = ERROR_MESSAGES["internal"]
    elif name == _ERROR:
        provider = ctx.last_provider_failure
        agno_type = getattr(terminal, "error_type", "") or ""
        if agno_type == "model_provider_error" or provider is not None:
            if provider is not None and provider.status_code in RATE_LIMIT_STATUS:
                result.status, result.error_type = RunStatus.RATE_LIMITED, "rate_limited"
                result.retry_after = provider.retry_after
            else:
                result.status, result.error_type = RunStatus.ERROR, "provider_error"
        else:
            result.status, result.error_type = RunStatus.ERROR, "internal"
    elif name == _PAUSED:
        # It asks its user (a confirmation, fields): continued later (chat.runs.pause).
        result.status = RunStatus.PAUSED
    elif name != _COMPLETED:
        # agno ended without saying how: treat as a failure, visibly.
        result.status, result.error_type = RunStatus.ERROR, "internal"
    if result.error_type and not result.message:
        result.message = ERROR_MESSAGES[result.error_type]
    return result


def terminal_event(handle: RunHandle, result: RunResult) -> Any:
    """The one terminal event clients receive: agno's own when it says what happened, else ours."""
    terminal = handle.account.terminal
    name = getattr(terminal, "event", None)
    common = {"run_id": handle.run_id, "session_id": handle.session_id, "team_id": handle.team_id,
              "team_name": team_name(handle.team_id)}
    if result.status == RunStatus.CANCELLED:
        if name == _CANCELLED:
            return terminal
        return cancelled_event(**common, content=result.content or None)
    if not result.error_type and name in (_COMPLETED, _PAUSED):
        return terminal
    return error_event(**common, content=result.message or ERROR_MESSAGES["internal"],
                       error_type=result.error_type or "internal", retry_after=result.retry_after)


def usage_fields(handle: RunHandle, result: RunResult, finished: datetime) -> dict:
    """The run's RunUsage row (metrics.models): who, what, how it ended, tokens, timing."""
    account, ctx = handle.account, handle.ctx
    raw_error = ""
    terminal = account.terminal
    if result.error_type:
        detail = ctx.last_provider_failure.message if ctx.last_provider_failure else getattr(terminal, "content", "")
        raw_error = storable(f"{result.message} [{detail or result.error_type}]"[:2000])
    prior = handle.prior or {}  # a continuation: the run's part before its pause (chat.runs.pause)
    return {
        "run_id": handle.run_id,
        "user_id": handle.user_id,
        "username": handle.request.username,
        "session_id": handle.session_id,
        "team_id": handle.team_id,
        "model": str(model_spec()),
        "status": result.status,
        "error_type": result.error_type,
        "error_message": raw_error,
        **account.tokens,
        "estimated_tokens": account.estimated_tokens,
        "model_calls": account.model_calls,
        "member_runs": len(account.member_runs) + prior.get("member_runs", 0),
        "delegations": account.delegations,
        "retries": ctx.retries + prior.get("retries", 0),
        "backoff_seconds": round(ctx.backoff_seconds + prior.get("backoff_seconds", 0.0), 3),
        "deep_research": handle.request.deep_research,
        "streamed": handle.request.streamed,
        "started_at": handle.started_at,
        "finished_at": finished,
        "duration_ms": int(account.elapsed() * 1000) + prior.get("duration_ms", 0),
        "ttft_ms": _ttft_ms(account, prior),
    }


def _ttft_ms(account: Any, prior: dict) -> int | None:
    """The run's time to first token: its paused part's, if that streamed any text, else this part's
    (counted from the continuation's start plus the paused part's duration)."""
    if prior.get("ttft_ms") is not None:
        return prior["ttft_ms"]
    if account.ttft is None:
        return None
    return int(account.ttft * 1000) + prior.get("duration_ms", 0)
