"""Report queries on run usage and model calls: the usage numbers of the admin reports and of /usage.

The delegation-failure report is metrics.failure_report, the budget check's query
metrics.budget_spend.

Grouped rows are plain dicts (one shape for HTML, CSV and tests). Token counts and rates are SQL
aggregates, costs exact sums (`metrics.expressions.ExactSum`: SQLite
stores decimals as binary floats), days native SQL on SQLite (`Day`), percentiles PostgreSQL's
percentile_cont, or on SQLite, which has none, the same definition over the timings read in
one pass (two integer columns, no conversion per row) shared by a report and its totals.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connections, models
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .expressions import Day, ExactSum
from .percentiles import PercentileCont, in_database, percentile_cont

TOKENS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
          "cache_write_tokens")
OUTCOMES = ("error", "rate_limited", "timed_out", "cancelled")
RUNNING = "running"  # RunStatus.RUNNING (metrics.models imports this module)
GROUPS = ("day", "user", "model", "kind")
ZERO = Decimal("0")
# The days a report may name: an end day's next midnight must exist, and before 1970 there is no usage.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9999, 12, 30)


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end + 1 day 00:00) in the current time zone: both days included."""
    tz = timezone.get_current_timezone()
    return (timezone.make_aware(datetime.combine(start, time.min), tz),
            timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz))


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def ratio(part, whole) -> float | None:
    return None if not whole else part / whole


def pricing_of(count: int, priced: int, unpriced: int) -> str:
    """How much of a group's cost is known: `none` (an empty group: nothing to price, cost 0),
    `priced` (every member priced), `unpriced` (none priced: cost NULL), else `partial`."""
    if not count:
        return "none"
    if priced == count:
        return "priced"
    return "unpriced" if unpriced == count else "partial"


def _set_percentiles(row: dict, durations: list, ttfts: list) -> None:
    durations, ttfts = sorted(durations), sorted(ttfts)
    row.update(p50_duration_ms=percentile_cont(durations, 0.5), p95_duration_ms=percentile_cont(durations, 0.95),
               p50_ttft_ms=percentile_cont(ttfts, 0.5), p95_ttft_ms=percentile_cont(ttfts, 0.95))


class RunUsageQuerySet(models.QuerySet):
    def ended(self) -> RunUsageQuerySet:
        """Runs with a terminal status (a `running` row's tokens and cost are not final yet)."""
        return self.exclude(status=RUNNING)

    def for_period(self, start: date, end: date) -> RunUsageQuerySet:
        """The runs started from `start` to `end` (both days, current time zone) that have ended:
        every report and the /usage figures are of ended runs."""
        since, until = day_bounds(start, end)
        return self.ended().filter(started_at__gte=since, started_at__lt=until)

    def matching(self, *, user_id: int | None = None, model: str = "", status: str = "",
                 kind: str = "") -> RunUsageQuerySet:
        qs = self
        if kind:
            qs = qs.filter(kind=kind)
        if user_id:
            qs = qs.filter(user_id=user_id)
        if model:
            qs = qs.filter(model=model)
        if status:
            qs = qs.filter(status=status)
        return qs

    def totals(self) -> dict:
        """Run, token and cost totals of the rows in this queryset (the change list's summary)."""
        return self._summarize(None)[0][0]

    def spend(self) -> dict:
        """Exact cost of these runs, and what could not be priced (runs and tokens)."""
        agg = self.aggregate(unpriced_runs=Count("id", filter=~Q(pricing="priced")),
                             unpriced_tokens=Sum("unpriced_tokens"), cost=ExactSum("cost"))
        return {"cost": agg["cost"] or ZERO, "unpriced_runs": agg["unpriced_runs"],
                "unpriced_tokens": agg["unpriced_tokens"] or 0}

    def report(self, group: str) -> list[dict]:
        """One row per day, user, model or kind (chat runs apart from naming calls): runs, tokens,
        cost, coverage gap, latency, outcome rates."""
        return self.report_with_totals(group, totals=False)[0]

    def report_with_totals(self, group: str, *, totals: bool = True) -> tuple[list[dict], dict | None]:
        """`report(group)` and `totals()` of the same runs: on SQLite in one pass over their timings."""
        if group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}")
        return self._summarize(group, with_totals=totals)

    def daily_series(self, start: date, end: date) -> list[dict]:
        """Runs and cost of every day from start to end (days without runs included, as zero)."""
        qs = self.for_period(start, end).annotate(key=self._key("day")).values("key")
        rows = {r["key"]: (r["runs"], r["cost"]) for r in qs.annotate(runs=Count("id"), cost=ExactSum("cost"))
                .order_by()}
        return [{"day": day, "runs": rows.get(day, (0, None))[0], "cost": rows.get(day, (0, None))[1] or ZERO}
                for day in days_between(start, end)]

    def usage_totals(self) -> dict:
        """A user's usage summary of these runs: runs, tokens by kind, exact cost, coverage gap, pricing.

        `cost` is the exact sum of the priced part (None when no run had a price, 0 for no runs);
        `pricing` is `pricing_of` the runs' own statuses (a `partial` run makes the group partial).
        """
        return self._usage(None)[None]

    def usage_by_kind(self) -> list[dict]:
        """`usage_totals` of each kind of usage row (chat runs, naming calls), chat first; kinds
        without rows are left out."""
        rows = self._usage("kind")
        return [{"kind": kind, **rows[kind]} for kind in sorted(rows, key=lambda k: (k != "chat", k))]

    def usage_by_day(self, start: date, end: date) -> list[dict]:
        """`usage_totals` of every day from start to end (current time zone), days without runs as zeros."""
        rows = self.for_period(start, end)._usage("day")
        return [{"day": day, **(rows.get(day) or self._usage_row({}))} for day in days_between(start, end)]

    # -- internals ------------------------------------------------------------------------

    def _usage(self, group: str | None) -> dict:
        aggregates = {
            "runs": Count("id"),
            "priced_runs": Count("id", filter=Q(pricing="priced")),
            "unpriced_runs": Count("id", filter=Q(pricing="unpriced")),
            **{name: Sum(name) for name in (*TOKENS, "unpriced_tokens")},
            "cost": ExactSum("cost"),
        }
        if group is None:
            rows = {None: self.aggregate(**aggregates)}
        else:
            rows = {row.pop("key"): row for row in
                    self.annotate(key=self._key(group)).values("key").annotate(**aggregates).order_by()}
        return {key: self._usage_row(row) for key, row in rows.items()}

    @staticmethod
    def _usage_row(row: dict) -> dict:
        runs = row.get("runs") or 0
        out = {"runs": runs, **{name: row.get(name) or 0 for name in (*TOKENS, "unpriced_tokens")}}
        out["pricing"] = pricing_of(runs, row.get("priced_runs") or 0, row.get("unpriced_runs") or 0)
        cost = row.get("cost")
        out["cost"] = ZERO if out["pricing"] == "none" else None if out["pricing"] == "unpriced" else cost or ZERO
        return out

    def _key(self, group: str):
        if group == "day":
            return Day("started_at", tzinfo=timezone.get_current_timezone())
        # By user id, not name: no join, and a narrower sort; names are looked up afterwards. A
        # deleted account's rows have no user any more, but keep its id (account_id).
        if group == "user":
            return Coalesce("user_id", "account_id", output_field=models.BigIntegerField())
        return F(group)  # model, kind

    def _summarize(self, group: str | None, *, with_totals: bool = False) -> tuple[list[dict], dict | None]:
        aggregates = {
            "runs": Count("id"),
            **{name: Sum(name) for name in TOKENS},
            "unpriced_tokens": Sum("unpriced_tokens"),
            "unpriced_runs": Count("id", filter=~Q(pricing="priced")),
            **{name: Count("id", filter=Q(status=name)) for name in OUTCOMES},
            "cost": ExactSum("cost"),
        }
        sql_percentiles = in_database()
        if sql_percentiles:
            aggregates.update(
                p50_duration_ms=PercentileCont("duration_ms", 0.5), p95_duration_ms=PercentileCont("duration_ms", 0.95),
                p50_ttft_ms=PercentileCont("ttft_ms", 0.5), p95_ttft_ms=PercentileCont("ttft_ms", 0.95),
            )
        if group is None:
            rows = [{"key": None, **self.aggregate(**aggregates)}]
        else:
            rows = list(self.annotate(key=self._key(group)).values("key").annotate(**aggregates).order_by("key"))
        totals = None
        if with_totals and group is not None:
            totals = {"key": None, **self.aggregate(**aggregates)} if sql_percentiles else self._sum_of(rows)
        if not sql_percentiles:
            self._percentiles_in_one_pass(rows, totals, group)
        if group == "user":
            names = dict(self.model._meta.get_field("user").related_model.objects
                         .filter(pk__in=[r["key"] for r in rows if r["key"] is not None])
                         .values_list("pk", "username"))
            gone = [r["key"] for r in rows if r["key"] is not None and r["key"] not in names]
            if gone:  # deleted accounts: the name their rows kept
                kept = self.filter(user__isnull=True, account_id__in=gone).values_list("account_id", "username")
                for pk, name in kept:
                    names[pk] = f"{name or pk} (deleted)"
            for row in rows:
                row["key"] = names.get(row["key"])
            rows.sort(key=lambda r: (r["key"] is None, r["key"] or ""))
        return [self._finish(row) for row in rows], totals and self._finish(totals)

    @staticmethod
    def _sum_of(rows: list[dict]) -> dict:
        """The totals row of grouped rows (every aggregate but the percentiles adds up)."""
        total = {"key": None}
        for name in ("runs", *TOKENS, "unpriced_tokens", "unpriced_runs", *OUTCOMES):
            total[name] = sum(row[name] or 0 for row in rows)
        costs = [row["cost"] for row in rows if row["cost"] is not None]
        total["cost"] = sum(costs, ZERO) if costs else None
        return total

    def _percentiles_in_one_pass(self, rows: list[dict], totals: dict | None, group: str | None) -> None:
        """p50/p95 of duration and TTFT of each row (and of the totals), for databases without
        percentile_cont: one read of the period's two timing columns, shared by every row."""
        qs = (self.annotate(key=self._key(group)) if group else self.annotate(key=Value(0)))
        sql, params = qs.values_list("key", "duration_ms", "ttft_ms").order_by().query.sql_with_params()
        durations, ttfts = defaultdict(list), defaultdict(list)
        # The cursor, not the queryset: Django's per-row conversions cost more than the query (a day
        # comes back as its ISO text, converted once per group below).
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, params)
            for key, duration, ttft in cursor.fetchall():
                durations[key].append(duration)
                if ttft is not None:  # no text came: left out, as percentile_cont leaves NULL out
                    ttfts[key].append(ttft)
        raw = {(date.fromisoformat(k) if group == "day" else k if group else None): k for k in durations}
        for row in rows:
            key = raw.get(row["key"])
            _set_percentiles(row, durations.get(key, []), ttfts.get(key, []))
        if totals is not None:
            _set_percentiles(totals, [v for values in durations.values() for v in values],
                 [v for values in ttfts.values() for v in values])

    @staticmethod
    def _finish(row: dict) -> dict:
        for name in (*TOKENS, "unpriced_tokens"):
            row[name] = row[name] or 0
        runs = row["runs"]
        row["unpriced_share"] = ratio(row["unpriced_tokens"], row["total_tokens"])
        for name in OUTCOMES:
            row[f"{name}_rate"] = ratio(row[name], runs)
        return row


class ModelCallQuerySet(models.QuerySet):
    def for_period(self, start: date, end: date) -> ModelCallQuerySet:
        """The ledger rows of the runs started from `start` to `end` (both days, current time zone)."""
        since, until = day_bounds(start, end)
        return self.filter(run__started_at__gte=since, run__started_at__lt=until)

    def of_user(self, user_id: int) -> ModelCallQuerySet:
        return self.filter(run__user_id=user_id)

    def usage_by_model(self) -> list[dict]:
        """One row per provider and model: runs, calls, tokens by kind, exact cost, coverage gap, pricing.

        `pricing` is `pricing_of` the ledger rows (a model priced in some runs and not in others is
        `partial`); `unpriced_tokens` are the total tokens of its unpriced rows.
        """
        # The unpriced sums come first: an aggregate named like a field shadows it for later ones.
        aggregates = {"unpriced_tokens": Sum("total_tokens", filter=Q(pricing="unpriced")),
                      "priced_rows": Count("id", filter=Q(pricing="priced")),
                      "rows": Count("id"), "runs": Count("run", distinct=True), "calls": Sum("calls"),
                      **{name: Sum(name) for name in TOKENS}, "cost": ExactSum("cost")}
        rows = list(self.values("provider", "model").annotate(**aggregates).order_by("provider", "model"))
        out = []
        for row in rows:
            rows_n, priced = row.pop("rows"), row.pop("priced_rows")
            cost = row.pop("cost")
            entry = {name: row[name] or 0 for name in ("runs", "calls", *TOKENS, "unpriced_tokens")}
            entry["pricing"] = pricing_of(rows_n, priced, rows_n - priced)
            entry["cost"] = None if entry["pricing"] == "unpriced" else cost or ZERO
            out.append({"provider": row["provider"], "model": row["model"], **entry})
        return out

    def totals(self) -> dict:
        """Calls, tokens by kind, exact cost, and the unpriced part of these ledger rows."""
        # The unpriced sums come first: an aggregate named like a field shadows it for later ones.
        agg = self.aggregate(unpriced_rows=Count("id", filter=Q(pricing="unpriced")),
                             unpriced_tokens=Sum("total_tokens", filter=Q(pricing="unpriced")),
                             rows=Count("id"), calls=Sum("calls"), **{name: Sum(name) for name in TOKENS})
        agg = {key: value or 0 for key, value in agg.items()}
        sums = self.aggregate(cost=ExactSum("cost"), reported=ExactSum("provider_reported_cost"))
        agg["cost"], agg["provider_reported_cost"] = sums["cost"], sums["reported"]
        return agg

    def coverage_gap(self) -> list[dict]:
        """The provider/model pairs that had no price rule, with their calls and tokens."""
        return list(self.filter(pricing="unpriced").values("provider", "model")
                    .annotate(runs=Count("run", distinct=True), calls=Sum("calls"), tokens=Sum("total_tokens"))
                    .order_by("-tokens", "provider", "model"))
