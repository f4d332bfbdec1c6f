"""Continuous percentiles: in the database on PostgreSQL, in Python elsewhere, with one definition.

PostgreSQL's `percentile_cont(f) WITHIN GROUP (ORDER BY x)` interpolates linearly between the
two values around position f x (n - 1) of the sorted non-null values. SQLite has no such
aggregate, so there the report reads the values (ordered) and `percentile_cont` below applies
the same formula; tests compare both on the same rows. Django ships no percentile aggregate,
hence this small one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.db import connection
from django.db.models import Aggregate, FloatField


class PercentileCont(Aggregate):
    """percentile_cont(fraction) WITHIN GROUP (ORDER BY expression); PostgreSQL only."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, fraction: float, **extra):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        # A float literal (not a parameter): the fraction comes from code, never from a request.
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def in_database() -> bool:
    """Whether the connected database computes percentiles itself."""
    return connection.vendor == "postgresql"


def percentile_cont(sorted_values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont over already sorted, non-null values; None when empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    position = fraction * (n - 1)
    low, high = math.floor(position), math.ceil(position)
    a, b = float(sorted_values[low]), float(sorted_values[high])
    return a + (b - a) * (position - low)
