"""Monthly budgets: whether a user's month-to-date spend has reached the limit staff set.

Spend is the sum of the user's RunUsage.cost this calendar month (settings.TIME_ZONE), which
includes every member call of every finished run. Runs still in flight are not in it yet (they
are allowed to finish). Tokens of calls without a price rule are reported beside the spend,
never priced by guesswork, and never count toward the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from .models import Budget


def month_start(now: datetime) -> datetime:
    """Midnight on the first day of `now`'s month, in the current time zone."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class BudgetStatus:
    limit: Decimal
    spent: Decimal
    unpriced_runs: int
    unpriced_tokens: int
    since: datetime

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit


def budget_status(user_id: int, now: datetime) -> BudgetStatus | None:
    """The user's budget and month-to-date spend, or None when the user has no budget: one query."""
    since = month_start(now)
    row = Budget.objects.with_spend(user_id, since, now)
    if row is None:
        return None
    return BudgetStatus(limit=row["limit"], spent=row["cost"], unpriced_runs=row["unpriced_runs"],
                        unpriced_tokens=row["unpriced_tokens"], since=since)


def budget_refusal(user_id: int, now: datetime) -> str | None:
    """Why a new run of this user must be refused (its month's spend is at or over the budget), or None.

    Sync (one query): call it through chat.storage.executor.run_db from the run path.
    """
    status = budget_status(user_id, now)
    if status is None or not status.exhausted:
        return None
    message = (f"Your monthly budget of ${status.limit:.2f} is used up: ${status.spent:.2f} spent since "
               f"{status.since:%d %B %Y}. New messages can be sent again next month, or when an "
               f"administrator raises the budget.")
    if status.unpriced_tokens:
        message += f" ({status.unpriced_tokens} tokens of models without a price are not included.)"
    return message
