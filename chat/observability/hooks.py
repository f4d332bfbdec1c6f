"""The calls the run service makes at its operational events: the log line and the metrics in one.

One call per event, so the run path has one line per event and cannot log without counting
(or the reverse). Each is a few microseconds (docs/OPERATIONS.md). With CIRKELLINE_TELEMETRY=false
each returns at once (the benchmark's "off" side, docs/PERFORMANCE.md).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from . import logs, prom

_TOKEN_FIELDS = {kind: f"{kind}_tokens" for kind in prom.TOKEN_KINDS}


def run_finished(usage_fields: dict[str, Any], *, cost: Any = None, message: str | None = None) -> None:
    """A run ended and its usage is known: its log line, its counters and histograms.

    `usage_fields`: the RunUsage values (status, error_type, model, tokens, duration_ms,
    ttft_ms, ...). `cost`: USD when priced, else None. `message`: the user's message (logged
    only with CIRKELLINE_LOG_CONTENT=true).
    """
    if not settings.CIRKELLINE_TELEMETRY:
        return
    ttft_ms = usage_fields.get("ttft_ms")
    prom.observe_run(
        status=usage_fields.get("status") or "",
        error_type=usage_fields.get("error_type") or "",
        model=usage_fields.get("model") or "",
        duration_s=(usage_fields.get("duration_ms") or 0) / 1000,
        ttft_s=None if ttft_ms is None else ttft_ms / 1000,
        tokens={kind: int(usage_fields.get(name) or 0) for kind, name in _TOKEN_FIELDS.items()},
        cost=None if cost is None else float(cost),
    )
    logs.log_run_finished(usage_fields, cost=cost, message=message)


def retry_reason(status_code: int | None) -> str:
    """Why a provider call is retried: rate_limited, timeout, connection_error, server_error, ..."""
    return prom.call_outcome(status_code)


def provider_retry(*, status_code: int | None, attempt: int, delay_s: float, mid_stream: bool,
                   detail: str | None = None) -> None:
    """A failed provider call about to be retried after `delay_s` (its attempt number, from 1)."""
    if not settings.CIRKELLINE_TELEMETRY:
        return
    reason = retry_reason(status_code)
    prom.provider_retry(reason)
    logs.log_provider_retry(reason=reason, status_code=status_code, attempt=attempt, delay_s=delay_s,
                            mid_stream=mid_stream, detail=detail)


def provider_call_ended(status_code: int | None = None, *, ok: bool = False, timed_out: bool = False) -> None:
    """One provider call attempt ended: ok, timed out (first-token deadline), or failed with a status."""
    if not settings.CIRKELLINE_TELEMETRY:
        return
    prom.provider_call("ok" if ok else "timeout" if timed_out else prom.call_outcome(status_code))


def admission_refused(*, scope: str, user_id: Any, retry_after: float, limit: int | None = None) -> None:
    """A run refused admission: `scope` "user" or "process"."""
    if not settings.CIRKELLINE_TELEMETRY:
        return
    prom.admission_refused(scope)
    logs.log_admission_refused(scope=scope, user_id=user_id, retry_after=retry_after, limit=limit)


def delegation_failure(*, kind: str, member: str, live: bool, excerpt: str | None = None) -> None:
    """A delegation failure found in a run (once per run, kind and member; docs/COST.md)."""
    if not settings.CIRKELLINE_TELEMETRY:
        return
    prom.delegation_failure(kind)
    logs.log_delegation_failure(kind=kind, member=member, live=live, excerpt=excerpt)
