"""Counting the ORM's query compilations: the run path's prepared statements must compile none."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from django.db.models.sql import compiler

# Every compiler whose as_sql builds a statement (the INSERT, UPDATE, DELETE and aggregate ones
# override SQLCompiler's).
COMPILERS = (compiler.SQLCompiler, compiler.SQLInsertCompiler, compiler.SQLUpdateCompiler,
             compiler.SQLDeleteCompiler, compiler.SQLAggregateCompiler)


class Compiled:
    count = 0


@contextlib.contextmanager
def compiled_queries() -> Iterator[Compiled]:
    """Within it, `.count` is how many queries the ORM compiled (the queries still run)."""
    seen = Compiled()

    def counting(original):
        def as_sql(self, *args, **kwargs):
            seen.count += 1
            return original(self, *args, **kwargs)
        return as_sql

    with contextlib.ExitStack() as stack:
        for cls in COMPILERS:
            stack.enter_context(mock.patch.object(cls, "as_sql", counting(cls.__dict__["as_sql"])))
        yield seen
