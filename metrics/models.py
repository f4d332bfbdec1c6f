"""Usage, cost and delegation-failure records. A leaf app: it never imports chat or agno.

- `RunUsage`: the one row every team run leaves behind, whatever its ending: written `running`
  when the run is admitted, then given its terminal status, tokens summed over the leader and
  every member run, timings, retries, and its cost. A model call made for a session outside its
  runs (naming it) has a row of its own, of another `kind`.
- `ModelCall`: the ledger under a RunUsage, one row per agent x model of the run, each priced
  with the `PriceRule` in force when the run started (the rule is snapshotted on the row).
- `PriceRule`: list prices per million tokens, versioned by effective dates.
- `Budget`: an optional monthly spend limit per user.
- `DelegationFailure`: a delegation that went wrong (see chat/runs/delegation.py).
- `WorkerLease`: each server process's heartbeat; a running row whose worker's lease expired is
  closed by another process (metrics/leases.py).
- `Feedback`: what a user said about one of their answers (thumbs up or down, a comment), with
  staff's status; one per run, under the run's usage row (metrics/feedback.py has its queries).

Report queries live on the QuerySets in metrics/reports.py.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from .budget_spend import BudgetQuerySet
from .failure_report import DelegationFailureQuerySet
from .feedback import FeedbackQuerySet
from .leases import WorkerLeaseQuerySet
from .reports import ModelCallQuerySet, RunUsageQuerySet

# Cost columns: USD with 8 decimal places (the rounding rule is in metrics/pricing.py).
COST = {"max_digits": 20, "decimal_places": 8}
PRICE = {"max_digits": 12, "decimal_places": 6}
TOKEN_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
                "cache_write_tokens")


class RunStatus(models.TextChoices):
    # The only status that is not terminal: the run was admitted and its worker has not ended it
    # yet. A running row whose worker is gone is closed by another worker (chat.runs.reaper).
    RUNNING = "running", "running"
    COMPLETED = "completed", "completed"
    ERROR = "error", "error"
    RATE_LIMITED = "rate_limited", "rate limited"
    TIMED_OUT = "timed_out", "timed out"
    CANCELLED = "cancelled", "cancelled"
    # The run asked its user something (a tool that needs confirmation, agno's get_user_input) and
    # waits for the answer (POST /teams/{team_id}/runs/{run_id}/continue): tokens and cost so far.
    # Not running (no admission slot, no worker); continuing it makes the same row running again
    # and its end adds the continued part (docs/COST.md).
    PAUSED = "paused", "paused (waiting for its user)"
    # A paused run nobody continued within CIRKELLINE_PAUSE_TTL_SECONDS: terminal, billed for the
    # part before its pause.
    EXPIRED = "expired", "expired while paused"


class UsageKind(models.TextChoices):
    """What a usage row bills: a team run, or a model call made for one outside it (docs/COST.md)."""

    CHAT = "chat", "chat run"
    # The title a session gets from the model after its first answer (chat.runs.naming).
    NAMING = "naming", "session naming"
    # Embedding calls made outside a run: a document's chunks at upload, a question searched over
    # the API (chat.runs.embedding). Inside a run they are on the run's ledger (agent `embedding`).
    EMBEDDING = "embedding", "document embedding"


class Pricing(models.TextChoices):
    PRICED = "priced", "priced"
    PARTIAL = "partial", "partly priced"  # runs only: some of its calls had no price rule
    UNPRICED = "unpriced", "unpriced"


class RunUsage(models.Model):
    run_id = models.CharField(max_length=64, unique=True)
    # Accounting outlives accounts: deleting a user keeps the usage rows (`user` becomes NULL), and
    # who the run belonged to stays on the row (`account_id`, `username`), so reports still name them.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="run_usage"
    )
    # The user's id and username when the run was billed; never cleared.
    account_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    username = models.CharField(max_length=150, blank=True, default="")
    session_id = models.CharField(max_length=64, db_index=True)
    # The X-Request-ID of the request that started the run (chat.observability.request_id), as on
    # its log lines, so a user quoting it from an error body finds the run.
    request_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    team_id = models.CharField(max_length=64)
    # A chat run, or a call made for the session outside any run (naming): reports show them apart,
    # budgets and GET /usage count both. A database default too: rows inserted by prepared SQL.
    kind = models.CharField(max_length=16, choices=UsageKind.choices, default=UsageKind.CHAT,
                            db_default=UsageKind.CHAT)
    model = models.CharField(max_length=128, blank=True, default="")
    status = models.CharField(max_length=16, choices=RunStatus.choices, db_index=True)
    # timeout | rate_limited | provider_error | internal | worker_lost (its server process died
    # mid-run); worker_draining on a run cancelled because its server process was shutting down.
    # Empty when completed or cancelled by the user.
    error_type = models.CharField(max_length=32, blank=True, default="")
    error_message = models.TextField(blank=True, default="")

    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    # Of total_tokens, how many were counted locally, not reported by the provider: calls cut off
    # mid-stream (a cancel, a deadline, a broken stream) report no usage (docs/COST.md).
    estimated_tokens = models.PositiveBigIntegerField(default=0)

    # The exact sum of the priced ModelCall rows; NULL when none of them had a price rule.
    cost = models.DecimalField(null=True, blank=True, **COST)
    pricing = models.CharField(max_length=10, choices=Pricing.choices, default=Pricing.UNPRICED, db_index=True)
    # total_tokens of the calls that had no price rule: the coverage gap of the cost figures.
    unpriced_tokens = models.PositiveBigIntegerField(default=0)

    model_calls = models.PositiveIntegerField(default=0)
    member_runs = models.PositiveIntegerField(default=0)
    delegations = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    backoff_seconds = models.FloatField(default=0.0)

    deep_research = models.BooleanField(default=False)
    streamed = models.BooleanField(default=True)
    started_at = models.DateTimeField(db_index=True)
    # NULL while the run is running.
    finished_at = models.DateTimeField(null=True, blank=True)
    # The server process that owns the run: host:pid:nonce (chat.runs.lease). Its heartbeat is
    # the run's lease: once it stops, another process closes the run (error / worker_lost).
    worker = models.CharField(max_length=128, blank=True, default="")
    # While running: the calls completed so far per agent x model (the `calls` argument of
    # metrics.recording.record_run), kept current by the worker, so a run whose worker died is
    # still billed for them. NULL once the run ended (its ModelCall rows hold the ledger).
    live_ledger = models.JSONField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # From the start of the run to the first text delta (leader or member); null if none came.
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)

    objects = RunUsageQuerySet.as_manager()

    class Meta:
        verbose_name = "run usage"
        verbose_name_plural = "run usage"
        indexes = [
            models.Index(fields=["user", "started_at"], name="usage_user_time"),
            models.Index(fields=["team_id", "started_at"], name="usage_team_time"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} ({self.status})"


class WorkerLease(models.Model):
    """A server process's lease on the runs it owns (metrics/leases.py): renewed every heartbeat."""

    # host:pid:nonce, as on RunUsage.worker (chat.runs.worker).
    worker = models.CharField(max_length=128, unique=True)
    expires_at = models.DateTimeField()

    objects = WorkerLeaseQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.worker} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class PriceRuleQuerySet(models.QuerySet):
    def in_force(self, at: datetime) -> PriceRuleQuerySet:
        """Rules whose effective period contains `at` (from inclusive, to exclusive)."""
        return self.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=at), effective_from__lte=at)

    def overlapping(self, rule: PriceRule) -> PriceRuleQuerySet:
        """Rules for the same provider and pattern whose period overlaps `rule`'s."""
        qs = self.filter(provider=rule.provider, model_pattern=rule.model_pattern)
        qs = qs.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=rule.effective_from))
        if rule.effective_to is not None:
            qs = qs.filter(effective_from__lt=rule.effective_to)
        return qs.exclude(pk=rule.pk) if rule.pk else qs


class PriceRule(models.Model):
    """List prices of the models matching `model_pattern` at `provider`, USD per million tokens."""

    PRICE_FIELDS = ("input_per_million", "output_per_million", "cache_read_per_million",
                    "cache_write_per_million", "reasoning_per_million", "cache_in_input", "reasoning_in_output")

    provider = models.CharField(max_length=64, help_text="agno's provider name, lower case: google, openai, anthropic")
    model_pattern = models.CharField(
        max_length=128, help_text="A model id (gemini-2.5-flash) or a pattern with * (claude-sonnet-4-5*)")
    input_per_million = models.DecimalField(**PRICE)
    output_per_million = models.DecimalField(**PRICE)
    cache_read_per_million = models.DecimalField(
        null=True, blank=True, help_text="Cached input read; empty: billed at the input price", **PRICE)
    cache_write_per_million = models.DecimalField(
        null=True, blank=True, help_text="Cache write; empty: billed at the input price", **PRICE)
    reasoning_per_million = models.DecimalField(
        null=True, blank=True, help_text="Reasoning tokens where they differ; empty: the output price", **PRICE)
    cache_in_input = models.BooleanField(
        default=True, help_text="The provider's input token count already includes cache reads and writes")
    reasoning_in_output = models.BooleanField(
        default=True, help_text="The provider's output token count already includes reasoning tokens")
    currency = models.CharField(max_length=3, choices=[("USD", "USD")], default="USD")
    effective_from = models.DateTimeField(default=timezone.now)
    effective_to = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty: still in force")
    source_url = models.URLField(max_length=300, blank=True, default="")
    source_read = models.DateField(null=True, blank=True, help_text="When the source was read")
    note = models.TextField(blank=True, default="")

    objects = PriceRuleQuerySet.as_manager()

    class Meta:
        ordering = ("provider", "model_pattern", "-effective_from")
        indexes = [models.Index(fields=["provider", "effective_from"], name="price_provider_from")]
        constraints = [
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=models.F("effective_from")),
                name="price_period_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model_pattern} from {self.effective_from:%Y-%m-%d}"

    def matches(self, model_id: str) -> bool:
        return fnmatchcase(model_id.lower(), self.model_pattern.lower())

    def clean(self) -> None:
        self.provider = (self.provider or "").strip().lower()
        self.model_pattern = (self.model_pattern or "").strip()
        if self.effective_to is not None and self.effective_from and self.effective_to <= self.effective_from:
            raise ValidationError({"effective_to": "A rule must end after it starts."})
        if self.effective_from and self.provider and self.model_pattern:
            clash = PriceRule.objects.overlapping(self).first()
            if clash is not None:
                raise ValidationError(
                    f"Another rule for {self.provider}:{self.model_pattern} is in force over part of this "
                    f"period ({clash}); close it first, or change its price (which closes it for you).")

    @transaction.atomic
    def replace(self, *, at: datetime | None = None, **prices) -> PriceRule:
        """Close this rule at `at` (default now) and open a new one with `prices` changed from then on.

        Rows billed before `at` keep the price they were billed at (it is on their row);
        runs from `at` on are priced by the new rule.
        """
        at = at or timezone.now()
        unknown = set(prices) - set(self.PRICE_FIELDS) - {"source_url", "source_read", "note"}
        if unknown:
            raise ValueError(f"not price fields: {sorted(unknown)}")
        current = PriceRule.objects.select_for_update().get(pk=self.pk)
        if current.effective_to is not None and current.effective_to <= at:
            raise ValidationError("This rule is no longer in force; change the rule that replaced it.")
        if at <= current.effective_from:
            raise ValidationError("A price change must take effect after the rule it replaces started.")
        successor = PriceRule(
            **{f.name: getattr(current, f.name) for f in PriceRule._meta.concrete_fields if f.name != "id"})
        successor.effective_from, successor.effective_to = at, current.effective_to
        for name, value in prices.items():
            setattr(successor, name, value)
        current.effective_to = at
        current.save(update_fields=["effective_to"])
        successor.full_clean()
        successor.save()
        self.effective_to = at
        return successor


class ModelCall(models.Model):
    """Tokens and cost of one agent x model within a run (the leader, each member, nested teams)."""

    run = models.ForeignKey(RunUsage, to_field="run_id", db_column="run_id", on_delete=models.CASCADE,
                            related_name="calls")
    agent = models.CharField(max_length=128, help_text="agent id, or the team id for the leader")
    is_leader = models.BooleanField(default=False)
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=128)
    calls = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    # True when some of these tokens were counted locally (estimated_tokens of them): a call cut
    # off mid-stream, whose provider never reported its usage (docs/COST.md).
    estimated = models.BooleanField(default=False)
    estimated_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(null=True, blank=True, **COST)
    pricing = models.CharField(max_length=10, choices=Pricing.choices[::2], db_index=True)
    price_rule = models.ForeignKey(PriceRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The prices used, as they were: editing or deleting the rule later never changes this row.
    price_snapshot = models.JSONField(null=True, blank=True)
    provider_reported_cost = models.DecimalField(null=True, blank=True, **COST)

    objects = ModelCallQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "agent", "provider", "model"], name="one_call_row_per_agent_model"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.agent} {self.provider}:{self.model}"


class Budget(models.Model):
    """A user's monthly spend limit (calendar month in settings.TIME_ZONE), set by staff."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budget")
    monthly_limit = models.DecimalField(max_digits=12, decimal_places=2, help_text="USD per calendar month")
    currency = models.CharField(max_length=3, choices=[("USD", "USD")], default="USD")
    note = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    objects = BudgetQuerySet.as_manager()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(monthly_limit__gte=Decimal("0")), name="budget_not_negative")]

    def __str__(self) -> str:
        return f"{self.user} {self.monthly_limit} {self.currency}/month"


class FailureKind(models.TextChoices):
    ANNOUNCED_NOT_EXECUTED = "announced_not_executed", "announced, not executed"
    UNKNOWN_MEMBER = "unknown_member", "unknown member"
    EMPTY_TASK = "empty_task", "empty task"
    MEMBER_ERROR = "member_error", "member error"
    MEMBER_EMPTY_RESULT = "member_empty_result", "member gave an empty result"
    MEMBER_STALLED = "member_stalled", "member stalled"


class DelegationFailure(models.Model):
    run_id = models.CharField(max_length=64, db_index=True)
    session_id = models.CharField(max_length=64, blank=True, default="")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    model = models.CharField(max_length=128, blank=True, default="")
    kind = models.CharField(max_length=32, choices=FailureKind.choices, db_index=True)
    member = models.CharField(max_length=128, blank=True, default="")
    excerpt = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = DelegationFailureQuerySet.as_manager()

    class Meta:
        constraints = [
            # Recording is idempotent: a retried write (or a live record then the final one) adds nothing.
            models.UniqueConstraint(fields=["run_id", "kind", "member"], name="one_failure_per_run_kind_member"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.kind} {self.member}"


class Rating(models.TextChoices):
    UP = "up", "thumbs up"
    DOWN = "down", "thumbs down"


class FeedbackStatus(models.TextChoices):
    """Where staff are with a piece of feedback; a change by its user makes it unread again."""

    UNREAD = "unread", "unread"
    SEEN = "seen", "seen"
    DONE = "done", "done"


# The longest comment a user may leave with their rating (characters).
FEEDBACK_COMMENT_CHARS = 2000


class Feedback(models.Model):
    """A user's rating of one of their answers (a chat run), with an optional comment.

    One per run (changeable by its user), under the run's usage row: it outlives the chat (a
    deleted session keeps its usage rows and their feedback, for staff), and goes with the account.
    """

    run = models.OneToOneField(RunUsage, to_field="run_id", db_column="run_id", on_delete=models.CASCADE,
                               related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="run_feedback")
    session_id = models.CharField(max_length=64)
    rating = models.CharField(max_length=4, choices=Rating.choices, db_index=True)
    comment = models.TextField(blank=True, default="", max_length=FEEDBACK_COMMENT_CHARS)
    status = models.CharField(max_length=8, choices=FeedbackStatus.choices, default=FeedbackStatus.UNREAD,
                              db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = FeedbackQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "feedback"
        indexes = [models.Index(fields=["user", "session_id"], name="feedback_user_session")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.rating}"
