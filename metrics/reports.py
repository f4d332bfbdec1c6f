"""Report queries on the metrics models: every number the admin reports show comes from here.

Grouped rows are plain dicts (one shape for HTML, CSV and tests). Token counts and rates are SQL
aggregates, costs exact sums (`metrics.expressions.ExactSum`: SQLite
stores decimals as binary floats), days native SQL on SQLite (`Day`), percentiles PostgreSQL's
percentile_cont, or on SQLite, which has none, the same definition over the timings read in
one pass (two integer columns, no conversion per row) shared by a report and its totals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.apps import apps
from django.db import connections, models
from django.db.models import Count, F, FilteredRelation, Q, Sum, Value
from django.db.models.expressions import Col
from django.db.models.functions import Coalesce
from django.utils import timezone

from .expressions import Day, ExactSum, exact_decimal, exact_sum_sql
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


def _ratio(part, whole) -> float | None:
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
        row["unpriced_share"] = _ratio(row["unpriced_tokens"], row["total_tokens"])
        for name in OUTCOMES:
            row[f"{name}_rate"] = _ratio(row[name], runs)
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


class BudgetQuerySet(models.QuerySet):
    def with_spend(self, user_id: int, since: datetime, until: datetime) -> dict | None:
        """The user's budget and the spend of their runs started in [since, until], in ONE query:
        `{"limit", "cost", "unpriced_runs", "unpriced_tokens"}`, or None (no query result) when the
        user has no budget. The run path calls this on every run start and naming call (metrics.budgets).

        One prepared statement per database vendor (`_with_spend_statement`), run through a cursor:
        no query compilation per call (the ORM's compilation costs far more CPU than the query).
        The same values as `with_spend_orm`, the reference (tests/metrics/test_usage_queries.py
        compares the two); the manager's rows, not a filtered queryset's.
        """
        connection = connections[self.db]
        statement = _with_spend_statement(connection)
        prep = statement.started_at.get_db_prep_value
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, ["priced", prep(since, connection), prep(until, connection), RUNNING,
                                           user_id])
            row = cursor.fetchone()
        if row is None:
            return None
        limit, cost, unpriced_runs, unpriced_tokens = row
        for convert in statement.limit_converters:
            limit = convert(limit, statement.limit, connection)
        return {"limit": limit, "cost": exact_decimal(cost, statement.places) or ZERO,
                "unpriced_runs": unpriced_runs, "unpriced_tokens": int(unpriced_tokens or 0)}

    def with_spend_orm(self, user_id: int, since: datetime, until: datetime) -> dict | None:
        """`with_spend` as an ORM query (the reference its prepared statement is tested against).

        The runs are a LEFT JOIN on the (user, started_at) index; `cost` is an exact sum in SQL
        (see the module docstring), so no run row leaves the database.
        """
        # Running rows are left out: their cost is not known yet (docs/COST.md: concurrent starts).
        month = FilteredRelation("user__run_usage", condition=Q(user__run_usage__started_at__gte=since,
                                                                 user__run_usage__started_at__lte=until)
                                 & ~Q(user__run_usage__status=RUNNING))
        qs = self.filter(user_id=user_id).annotate(month=month)
        rows = list(qs.values("monthly_limit").annotate(
            cost=ExactSum("month__cost"), unpriced_runs=Count("month__id", filter=~Q(month__pricing="priced")),
            unpriced_tokens=Sum("month__unpriced_tokens")).order_by())
        if not rows:
            return None
        row = rows[0]
        return {"limit": row["monthly_limit"], "cost": row["cost"] or ZERO, "unpriced_runs": row["unpriced_runs"],
                "unpriced_tokens": row["unpriced_tokens"] or 0}


@dataclass(frozen=True)
class _Statement:
    sql: str
    started_at: models.Field  # the parameters' field (its database form of a datetime)
    limit: Col  # the budget's limit column and its converters (SQLite keeps decimals as floats)
    limit_converters: tuple
    places: int  # of the cost column, for its exact sum


_STATEMENTS: dict[str, _Statement] = {}  # per database vendor


def _with_spend_statement(connection) -> _Statement:
    statement = _STATEMENTS.get(connection.vendor)
    if statement is None:
        statement = _STATEMENTS[connection.vendor] = _build_with_spend_statement(connection)
    return statement


def _build_with_spend_statement(connection) -> _Statement:
    """`with_spend_orm` as SQL: the budget row by its unique user_id, LEFT JOIN the month's ended
    usage rows on the (user, started_at) index (the ORM joins through auth_user, which the
    foreign key makes a no-op). Parameters: the priced status, since, until, the running status,
    the user id. `status` and `pricing` are NOT NULL columns, so `<>` is the ORM's negation;
    COUNT of a CASE is its FILTER (a missing run's id is NULL: not counted)."""
    budget, usage = apps.get_model("metrics", "Budget"), apps.get_model("metrics", "RunUsage")
    quote = connection.ops.quote_name
    b = {f.name: f"b.{quote(f.column)}" for f in budget._meta.concrete_fields}
    r = {f.name: f"r.{quote(f.column)}" for f in usage._meta.concrete_fields}
    cost = usage._meta.get_field("cost")
    sql = (f"SELECT {b['monthly_limit']}, {exact_sum_sql(r['cost'], cost.decimal_places)}, "
           f"COUNT(CASE WHEN {r['pricing']} <> %s THEN {r['id']} END), SUM({r['unpriced_tokens']}) "
           f"FROM {quote(budget._meta.db_table)} b LEFT OUTER JOIN {quote(usage._meta.db_table)} r "
           f"ON ({r['user']} = {b['user']} AND {r['started_at']} >= %s AND {r['started_at']} <= %s "
           f"AND {r['status']} <> %s) WHERE {b['user']} = %s GROUP BY {b['id']}, {b['monthly_limit']}")
    limit = budget._meta.get_field("monthly_limit").get_col(budget._meta.db_table)
    converters = (*connection.ops.get_db_converters(limit), *limit.get_db_converters(connection))
    return _Statement(sql=sql, started_at=usage._meta.get_field("started_at"), limit=limit,
                      limit_converters=converters, places=cost.decimal_places)


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
            row["rate"] = _ratio(row["failures"], row["delegating_runs"])
        return rows
