"""SQL expressions the reports need that Django lacks, or makes slow on SQLite: both keep the
work in the database, so a report reads a few rows per group, never every row of its period.

`ExactSum`: exact sums of decimal columns, on PostgreSQL and SQLite alike. SQLite keeps a
decimal as a binary float (REAL) and sums floats, so `Sum("cost")` there is off in the last
places (0.1 + 0.2). Every stored value has at most the field's decimals and fewer than 15
significant digits (a cost below 10 million dollars), so it is a whole number of units of
10^-decimals that a float holds to well within half a unit: rounded and cast to an integer, it is
exact, and SQL sums integers exactly (SQLite in 64 bits: up to 92 billion dollars at 8 places;
PostgreSQL's sum of bigints is a numeric). The sum is scaled back to a Decimal in Python, one value
per group, so no row has to leave the database to be summed.

`Day`: Django's TruncDate, which on SQLite calls a Python function for every row (and a report's
window functions name it several times per row: 3 s over 100 000 rows); in UTC, the default and
what `GET /usage` pins, SQLite's own `date()` gives the same day, since Django stores datetimes
there as UTC text. Other zones keep Django's function (their offsets change with the date).
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Aggregate, IntegerField
from django.db.models.functions import TruncDate


class Day(TruncDate):
    """The date of a datetime in the current (or given) time zone; native SQL on SQLite in UTC."""

    def as_sqlite(self, compiler, connection, **extra_context):
        if self.get_tzname() != "UTC":
            return self.as_sql(compiler, connection, **extra_context)
        sql, params = compiler.compile(self.lhs)
        return f"date({sql})", params


class ExactSum(Aggregate):
    """SUM of a DecimalField as an exact Decimal with the field's decimal places (None: no value)."""

    function = "SUM"
    name = "ExactSum"
    output_field = IntegerField()
    template = "%(function)s(CAST(ROUND(%(expressions)s * %(unit)s) AS BIGINT))"

    @property
    def places(self) -> int:
        return self.get_source_expressions()[0].output_field.decimal_places

    def as_sql(self, compiler, connection, **extra_context):
        # An integer literal (not a parameter): the scale is the model field's, never a request's.
        return super().as_sql(compiler, connection, unit=str(10 ** self.places), **extra_context)

    def convert_value(self, value, expression, connection):
        return exact_decimal(value, self.places)


def exact_sum_sql(column: str, places: int) -> str:
    """`ExactSum` of a quoted column as SQL text, for a statement written by hand."""
    return ExactSum.template % {"function": ExactSum.function, "expressions": column, "unit": str(10 ** places)}


def exact_decimal(value, places: int) -> Decimal | None:
    """The Decimal of an `ExactSum` result (a whole number of units of 10^-places; None stays None)."""
    return None if value is None else Decimal(int(value)).scaleb(-places)
