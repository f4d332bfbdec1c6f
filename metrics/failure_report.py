"""The delegation-failure report: failures by kind, member, model or day, each with its rate.

A rate is failures over the delegating runs of the same period and filters (those that delegated
or had a failure recorded), so a run that failed several ways counts in several rows (docs/COST.md).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from django.db import models
from django.db.models import Count, F, Q
from django.utils import timezone

from .expressions import Day
from .reports import day_bounds, ratio


class DelegationFailureQuerySet(models.QuerySet):
    DIMENSIONS = ("kind", "member", "model", "day")

    def for_period(self, start: date, end: date) -> DelegationFailureQuerySet:
        since, until = day_bounds(start, end)
        return self.filter(created_at__gte=since, created_at__lt=until)

    def delegating_runs(self, runs: models.QuerySet) -> models.QuerySet:
        """Of `runs`, those that delegated or announced a delegation (had a failure recorded)."""
        return runs.filter(Q(delegations__gt=0) | Q(run_id__in=self.values("run_id")))

    def breakdown(self, dimension: str, runs: models.QuerySet) -> list[dict]:
        """Failures by kind, member, model or day, each with its rate: failures / delegating runs.

        `runs` is the RunUsage queryset of the same period and filters; for model and day the
        denominator is the delegating runs of that model or day, otherwise all delegating runs.
        """
        if dimension not in self.DIMENSIONS:
            raise ValueError(f"dimension must be one of {self.DIMENSIONS}")
        tz = timezone.get_current_timezone()
        key = Day("created_at", tzinfo=tz) if dimension == "day" else F(dimension)
        rows = list(self.annotate(key=key).values("key")
                    .annotate(failures=Count("id"), runs=Count("run_id", distinct=True)).order_by("key"))
        delegating = self.delegating_runs(runs)
        if dimension in ("model", "day"):
            run_key = Day("started_at", tzinfo=tz) if dimension == "day" else F("model")
            per_key = dict(delegating.annotate(key=run_key).values("key").annotate(n=Count("id"))
                           .values_list("key", "n").order_by())
        else:
            total = delegating.count()
            per_key = defaultdict(lambda: total)
        for row in rows:
            row["delegating_runs"] = per_key.get(row["key"], 0) if dimension in ("model", "day") else total
            row["rate"] = ratio(row["failures"], row["delegating_runs"])
        return rows
