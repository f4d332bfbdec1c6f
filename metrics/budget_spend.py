"""The budget check's query: a user's monthly budget and the spend of their month's runs, in one query.

`Budget.objects.with_spend` is one prepared statement per database vendor, run through a cursor
(the run path asks it at every run start and naming call, metrics.budgets: an ORM query's
compilation cost far more CPU than the query; docs/PERFORMANCE.md); `with_spend_orm` is the same
query in the ORM, the reference the tests compare it with on SQLite and PostgreSQL. Costs are
exact sums in SQL (`metrics.expressions.ExactSum`: SQLite stores decimals as binary floats).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.db import connections, models
from django.db.models import Count, FilteredRelation, Q, Sum
from django.db.models.expressions import Col

from .expressions import ExactSum, exact_decimal, exact_sum_sql
from .reports import RUNNING, ZERO


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
