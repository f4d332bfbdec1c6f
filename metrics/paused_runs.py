"""A paused run's usage row (waiting for its user): made running again for its continuation, or
ended as expired or cancelled.

The row keeps what the run used before its pause; the continuation's final `record_run`
(metrics.recording) writes the whole run. A paused row changes only by a conditional UPDATE
(`WHERE status = 'paused'`), so of two racing continues, or a continue and an expiry, exactly one
gets the row (docs/COST.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .models import TOKEN_FIELDS, ModelCall, RunStatus, RunUsage

# What a continued run's row carries over from its part before the pause (the continuation adds to it).
CARRIED_FIELDS = ("started_at", "deep_research", "model_calls", "member_runs", "delegations", "retries",
                  "backoff_seconds", "duration_ms", "ttft_ms", "estimated_tokens", "finished_at", *TOKEN_FIELDS)


def ledger_of(run_id: str) -> list[dict[str, Any]]:
    """A run's ModelCall rows as `record_run`'s `calls` (agent, model, provider, calls, tokens, ...)."""
    return [
        {"agent": row["agent"], "model": row["model"], "provider": row["provider"], "calls": row["calls"],
         "tokens": {name: row[name] for name in TOKEN_FIELDS}, "estimated_tokens": row["estimated_tokens"],
         "provider_cost": None if row["provider_reported_cost"] is None else str(row["provider_reported_cost"])}
        for row in ModelCall.objects.filter(run_id=run_id).order_by("id").values(
            "agent", "model", "provider", "calls", "estimated_tokens", "provider_reported_cost", *TOKEN_FIELDS)
    ]


def resume_paused(run_id: str, *, worker: str) -> dict[str, Any] | None:
    """Make a paused run's row running again for its continuation, owned by `worker`; None when it
    was not paused (continued or expired meanwhile: of two continues exactly one gets the row).

    Returns its fields before the pause (CARRIED_FIELDS) and its ledger (`calls`, as `record_run`
    takes them). The ledger rows are taken off the row (the live ledger holds them while it runs):
    the continuation's final `record_run` writes the whole run's ledger, the calls before the pause
    and after it merged per agent x model, priced at the run's start as before. Sync; call it
    inside the continuation's claim transaction.
    """
    row = RunUsage.objects.filter(run_id=run_id, status=RunStatus.PAUSED).values(*CARRIED_FIELDS).first()
    if row is None:
        return None
    calls = ledger_of(run_id)
    if not RunUsage.objects.filter(run_id=run_id, status=RunStatus.PAUSED).update(
            status=RunStatus.RUNNING, worker=worker, finished_at=None, live_ledger=calls):
        return None
    ModelCall.objects.filter(run_id=run_id).delete()
    return {**row, "calls": calls}


def expire_paused(run_id: str, status: str = RunStatus.EXPIRED) -> bool:
    """End a paused run's row as `expired` (nobody continued it in time) or `cancelled` (its user
    cancelled it instead of answering); False when it was not paused. Its tokens and cost stay
    those of the part before its pause. Sync."""
    return bool(RunUsage.objects.filter(run_id=run_id, status=RunStatus.PAUSED).update(status=status))


def paused_before(cutoff: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Paused runs that paused before `cutoff` (run_id, user_id, finished_at), oldest first."""
    return list(RunUsage.objects.filter(status=RunStatus.PAUSED, finished_at__lt=cutoff)
                .order_by("finished_at").values("run_id", "user_id", "account_id", "finished_at")[:limit])
