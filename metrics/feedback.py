"""Feedback on answers: what a user said about one of their runs (thumbs up or down, a comment),
kept with the run's usage row for staff, and the rates the usage report shows.

`FeedbackQuerySet` holds every query about feedback, always scoped to the user for theirs: give
(an upsert: one per run, changeable), withdraw, read one run's or a session's; and for staff,
`rates` (up / down counts and shares per model or per day of the runs). The caller (chat.runs.feedback)
has checked that the run is the user's and has ended; this app never imports chat.
"""

from __future__ import annotations

from datetime import date

from django.db import IntegrityError, models, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from .expressions import Day
from .reports import days_between

UP, DOWN = "up", "down"
UNREAD = "unread"
# What the user sees of their feedback (staff's status is not theirs to read).
PUBLIC_FIELDS = ("run_id", "session_id", "rating", "comment", "created_at", "updated_at")
RATE_GROUPS = ("model", "day")


def _ratio(part: int, whole: int) -> float | None:
    return None if not whole else part / whole


class FeedbackQuerySet(models.QuerySet):
    def of_user(self, user_pk: int) -> FeedbackQuerySet:
        return self.filter(user_id=user_pk)

    def give(self, user_pk: int, run_id: str, *, session_id: str, rating: str, comment: str) -> tuple[dict, bool]:
        """Store the user's feedback on their run `run_id`, or change it; (the feedback as they see
        it, True if it is new). A change makes it unread again for staff. Sync, one transaction."""
        now = timezone.now()
        changes = {"rating": rating, "comment": comment, "status": UNREAD, "updated_at": now}
        with transaction.atomic():
            created = False
            if not self.of_user(user_pk).filter(run_id=run_id).update(**changes):
                try:
                    with transaction.atomic():  # a savepoint: PostgreSQL aborts the transaction on a conflict
                        self.create(run_id=run_id, user_id=user_pk, session_id=session_id, created_at=now, **changes)
                    created = True
                except IntegrityError:  # the same user's other request created it first
                    self.of_user(user_pk).filter(run_id=run_id).update(**changes)
            return self.of_run(user_pk, run_id), created

    def withdraw(self, user_pk: int, run_id: str) -> bool:
        """Remove the user's feedback on `run_id`; whether there was any."""
        deleted, _ = self.of_user(user_pk).filter(run_id=run_id).delete()
        return deleted > 0

    def of_run(self, user_pk: int, run_id: str) -> dict | None:
        """The user's feedback on `run_id` (PUBLIC_FIELDS), or None."""
        return self.of_user(user_pk).filter(run_id=run_id).values(*PUBLIC_FIELDS).first()

    def of_session(self, user_pk: int, session_id: str) -> list[dict]:
        """The user's feedback on the runs of `session_id` (PUBLIC_FIELDS), oldest run first."""
        return list(self.of_user(user_pk).filter(session_id=session_id).order_by("run__started_at", "id")
                    .values(*PUBLIC_FIELDS))

    def matching(self, *, rating: str = "", status: str = "", model: str = "") -> FeedbackQuerySet:
        qs = self
        if rating:
            qs = qs.filter(rating=rating)
        if status:
            qs = qs.filter(status=status)
        if model:
            qs = qs.filter(run__model=model)
        return qs

    def mark(self, status: str) -> int:
        """Set staff's status (unread, seen, done) of these; how many changed (`updated_at` stays:
        it is the user's)."""
        return self.exclude(status=status).update(status=status)

    def rates(self, runs: models.QuerySet, group: str, start: date, end: date) -> list[dict]:
        """Feedback on `runs` (a RunUsage queryset: the period's chat runs) per model or per day of
        the runs: `runs` (answers), `rated`, `up`, `down`, `up_share` (up / rated), `rated_share`
        (rated / runs); shares None without a denominator. Days are the runs' start days, every
        day from `start` to `end` listed."""
        if group not in RATE_GROUPS:
            raise ValueError(f"group must be one of {RATE_GROUPS}")
        tz = timezone.get_current_timezone()
        key = Day("started_at", tzinfo=tz) if group == "day" else F("model")
        # One query: the runs LEFT JOIN their feedback (at most one per run), counted per key.
        rows = {row.pop("key"): row for row in runs.annotate(key=key).values("key").annotate(
            runs=Count("id"), up=Count("id", filter=Q(feedback__rating=UP)),
            down=Count("id", filter=Q(feedback__rating=DOWN))).order_by()}
        if group == "day":
            keys = days_between(start, end)
        else:
            keys = sorted(rows, key=lambda k: (k is None, k or ""))
        out = []
        for k in keys:
            row = rows.get(k) or {"runs": 0, "up": 0, "down": 0}
            rated = row["up"] + row["down"]
            out.append({"key": k, "runs": row["runs"], "rated": rated, "up": row["up"], "down": row["down"],
                        "up_share": _ratio(row["up"], rated), "rated_share": _ratio(rated, row["runs"])})
        return out
