"""Usage accounting. A leaf app: it never imports chat or agno.

`RunUsage` is the one row every team run leaves behind, whatever its ending: tokens summed
over the leader and every member run, timings, retries, and a terminal status.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    COMPLETED = "completed", "completed"
    ERROR = "error", "error"
    RATE_LIMITED = "rate_limited", "rate limited"
    TIMED_OUT = "timed_out", "timed out"
    CANCELLED = "cancelled", "cancelled"


class RunUsageQuerySet(models.QuerySet):
    def for_user(self, user) -> "RunUsageQuerySet":
        return self.filter(user=user)

    def totals(self) -> dict:
        """Token and run totals of the rows in this queryset."""
        agg = self.aggregate(
            runs=models.Count("id"),
            input_tokens=models.Sum("input_tokens"),
            output_tokens=models.Sum("output_tokens"),
            total_tokens=models.Sum("total_tokens"),
        )
        return {key: value or 0 for key, value in agg.items()}


class RunUsage(models.Model):
    run_id = models.CharField(max_length=64, unique=True)
    # Accounting outlives accounts: deleting a user keeps the usage rows.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="run_usage"
    )
    session_id = models.CharField(max_length=64, db_index=True)
    team_id = models.CharField(max_length=64)
    model = models.CharField(max_length=128, blank=True, default="")
    status = models.CharField(max_length=16, choices=RunStatus.choices, db_index=True)
    # timeout | rate_limited | provider_error | internal (empty when completed or cancelled)
    error_type = models.CharField(max_length=32, blank=True, default="")
    error_message = models.TextField(blank=True, default="")

    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)

    model_calls = models.PositiveIntegerField(default=0)
    member_runs = models.PositiveIntegerField(default=0)
    delegations = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    backoff_seconds = models.FloatField(default=0.0)

    deep_research = models.BooleanField(default=False)
    streamed = models.BooleanField(default=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    # From the start of the run to the first text delta (leader or member); null if none came.
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)

    objects = RunUsageQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["user", "started_at"], name="usage_user_time"),
            models.Index(fields=["team_id", "started_at"], name="usage_team_time"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} ({self.status})"
