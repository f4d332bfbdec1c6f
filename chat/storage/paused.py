"""The database side of paused runs (waiting for their user): finding one, claiming it for its
continuation, expiring it. Sync functions (from async code through chat.storage.executor.run_db).

A paused run is two rows: its run row (status PAUSED, agno's payload with its messages and
requirements) and its usage row (status `paused`, tokens and cost so far). Continuing it claims
both in one transaction (`claim_continuation`): the usage row becomes `running` again for the
worker that continues it (metrics.paused_runs.resume_paused: exactly one of two racing continues
gets it), the run row RUNNING, and the session is loaded for agno as a run's claim loads it, with
the paused run among its runs (agno continues it from there).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from chat.models import ChatRun
from chat.records import run_row
from metrics.models import RunStatus, RunUsage
from metrics.paused_runs import expire_paused, paused_before, resume_paused

from .buffer import existing_session

PAUSED = "PAUSED"
EXPIRED_CONTENT = "This run waited for its user's answer too long and expired."
CANCELLED_CONTENT = "Cancelled instead of answered."


def load_paused(user_pk: int, run_id: str) -> dict | None:
    """The user's stored run `run_id` (chat.models.ChatRunQuerySet.find's fields) with its usage
    row's `usage_status` and `paused_at` (when it paused), or None when it is not the user's."""
    stored = ChatRun.objects.find(user_pk, run_id)
    if stored is None:
        return None
    usage = RunUsage.objects.filter(run_id=run_id).values("status", "finished_at", "deep_research").first() or {}
    return {**stored, "usage_status": usage.get("status"), "paused_at": usage.get("finished_at"),
            "deep_research": bool(usage.get("deep_research"))}


def claim_continuation(session_id: str, user_pk: int, run_id: str, *, worker: str,
                       history_runs: int) -> tuple[dict, dict, dict, dict] | None:
    """Claim the user's paused run `run_id` for its continuation (one transaction): its usage row
    running for `worker`, its run row RUNNING. Returns (the agno session record with its history
    and the paused run, what the claim read about the user, the usage row's fields before the pause
    with its ledger, the paused run's row as stored), or None when it is no longer paused."""
    with transaction.atomic():
        prior = resume_paused(run_id, worker=worker)
        if prior is None:
            return None
        stored = ChatRun.objects.select_for_update().filter(run_id=run_id, user_id=user_pk, status=PAUSED).values(
            "payload", "run_index").first()
        if stored is None:  # the usage row said paused, the run row not (cannot happen): not continuable
            transaction.set_rollback(True)
            return None
        # Stored as running again (agno is handed the paused payload it continues from).
        ChatRun.objects.filter(run_id=run_id, user_id=user_pk).update(
            status="RUNNING", payload={**stored["payload"], "status": "RUNNING"})
        claimed = existing_session(session_id, user_pk, history_runs)
        if claimed is None:
            transaction.set_rollback(True)
            return None
        record, about = claimed
        record = {**record, "runs": [*record["runs"], stored["payload"]]}
    return record, about, prior, run_row(stored["payload"], stored["run_index"])


def expire_run(user_pk: int | None, run_id: str, now: datetime, *, cancelled: bool = False) -> bool:
    """Expire a paused run (nobody answered in CIRKELLINE_PAUSE_TTL_SECONDS): its usage row
    `expired`, its run row CANCELLED saying why; or, `cancelled`, end it as its user's cancel
    (usage `cancelled`). False when it was not paused any more."""
    with transaction.atomic():
        if not expire_paused(run_id, RunStatus.CANCELLED if cancelled else RunStatus.EXPIRED):
            return False
        runs = ChatRun.objects.filter(run_id=run_id, status=PAUSED)
        if user_pk is not None:
            runs = runs.filter(user_id=user_pk)
        for row in runs.select_for_update().values("pk", "payload"):
            payload = {**(row["payload"] or {}), "status": "CANCELLED",
                       "content": CANCELLED_CONTENT if cancelled else EXPIRED_CONTENT}
            ChatRun.objects.filter(pk=row["pk"]).update(status="CANCELLED", payload=payload, updated_at=now)
    return True


def expire_stale(now: datetime, ttl_seconds: float) -> int:
    """Expire every paused run that paused more than `ttl_seconds` before `now` (at most 500 a
    call, oldest first); how many were. One indexed query when there are none."""
    expired = 0
    for row in paused_before(now - timedelta(seconds=ttl_seconds)):
        expired += expire_run(row["user_id"], row["run_id"], now)
    return expired
