"""Worker leases: which server processes are alive, and which running usage rows lost theirs.

Every server process renews one row (`WorkerLease`, keyed by its worker id `host:pid:nonce`) every
heartbeat: one statement per process per interval, however many runs it owns. A running usage
row (status `running`) belongs to the worker named on it; once that worker's lease has expired,
the run is an orphan that any live process may close (chat.runs.reaper).

The lease lives in the database, not in Redis, even when Redis is configured: the runs it vouches
for are database rows, and a Redis restarted without its data (Redis kept as a cache) would drop
every lease at once and have every worker close every other worker's live runs. Times are the
processes' own clocks (as `started_at` is); they must agree to well under the lease (NTP).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.db.models import Exists, OuterRef, Q

RUNNING = "running"  # RunStatus.RUNNING (metrics.models imports this module)


class WorkerLeaseQuerySet(models.QuerySet):
    def renew(self, worker: str, expires_at: datetime) -> None:
        """Extend (or take) `worker`'s lease to `expires_at`: one upsert."""
        self.model.objects.bulk_create([self.model(worker=worker, expires_at=expires_at)], update_conflicts=True,
                                       unique_fields=["worker"], update_fields=["expires_at"])

    def forget_expired(self, before: datetime) -> int:
        """Delete leases expired before `before` whose worker owns no running row (housekeeping)."""
        from .models import RunUsage

        owning = RunUsage.objects.filter(status=RUNNING, worker=OuterRef("worker"))
        deleted, _ = self.filter(expires_at__lt=before).exclude(Exists(owning)).delete()
        return deleted


def orphaned(usage: models.QuerySet, *, now: datetime, unleased_after: dict[bool, float]) -> models.QuerySet:
    """The running rows of `usage` whose worker is gone.

    A row's worker is gone when its lease expired before `now`. A worker with no lease row at all
    (a process older than leases, mid rolling upgrade; a process whose first heartbeat has not
    landed yet) is given the benefit of the doubt: its run is an orphan only once it is older
    than its deadline plus grace, `unleased_after[deep_research]` seconds, when it could not be
    running any more anyway.
    """
    from .models import WorkerLease

    lease = WorkerLease.objects.filter(worker=OuterRef("worker"))
    no_lease = ~Exists(lease)
    stale = Q()
    for deep, seconds in unleased_after.items():
        stale |= Q(deep_research=deep, started_at__lt=now - timedelta(seconds=seconds))
    return usage.filter(status=RUNNING).filter(
        Exists(lease.filter(expires_at__lt=now)) | (no_lease & stale))
