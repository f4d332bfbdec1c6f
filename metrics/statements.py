"""The usage rows' per-run writes and reads as prepared SQL, built once per database.

`end_running` (the UPDATE that ends a run's running row), `has_usage_row` and `insert_rows` (in
place of `bulk_create`) stand for ORM queries, with values prepared as the ORM prepares them;
`prepared_statement` names the rest (the live ledger's UPDATE, the read of a user's name). Through
the ORM most of their CPU was Django compiling the same query for every run (docs/PERFORMANCE.md);
tests/metrics/test_recording.py compares each with its ORM query on both databases.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.db.models.constants import OnConflict
from django.db.models.expressions import DatabaseDefault

from .models import TOKEN_FIELDS, RunStatus, RunUsage


def end_running(run_id: str, fields: dict[str, Any]) -> int:
    """`RunUsage.objects.filter(run_id=run_id, status=RUNNING).update(**fields)` as a prepared
    statement (one per set of fields); how many rows it updated (0 or 1). Values are prepared by
    their fields' `get_db_prep_save`, as the ORM's UPDATE prepares them; fields that are not plain
    columns, or values that are expressions, go through the ORM. Sync."""
    names = tuple(fields)
    columns = _columns.get(names)
    if columns is None:
        columns = _columns[names] = tuple(RunUsage._meta.get_field(name) for name in names)
    values = fields.values()
    if any(field.is_relation for field in columns) or any(hasattr(v, "resolve_expression") for v in values):
        return RunUsage.objects.filter(run_id=run_id, status=RunStatus.RUNNING).update(**fields)
    with connection.cursor() as cursor:
        cursor.execute(prepared_statement(("end_running", names)), [
            *(field.get_db_prep_save(value, connection) for field, value in zip(columns, values, strict=True)),
            run_id, RunStatus.RUNNING])
        return cursor.rowcount


_columns: dict[tuple[str, ...], tuple] = {}  # end_running's fields by their names


def has_usage_row(run_id: str) -> bool:
    """`RunUsage.objects.filter(run_id=run_id).exists()` as a prepared statement. Sync."""
    with connection.cursor() as cursor:
        cursor.execute(prepared_statement("has_usage_row"), [run_id])
        return cursor.fetchone() is not None


def insert_rows(rows: list[models.Model], *, ignore_conflicts: bool = False) -> int | None:
    """`Model.objects.bulk_create(rows, ignore_conflicts=...)` as a prepared statement per model and
    set of columns (rows of one model, without primary keys; their ids are not read back). The
    same SQL form as the ORM's (`ops.insert_statement`, its ON CONFLICT suffix: SQLite's INSERT OR
    IGNORE), each value its field's `pre_save` then `get_db_prep_save`, as the ORM's INSERT
    prepares them; a field left at its database default is left out (the database fills it, as
    the ORM's DEFAULT does). Rows with a primary key or an expression go through the ORM. How
    many rows the database inserted (a conflict ignored is not one), or None where it does not
    say (the ORM's way). Sync."""
    if not rows:
        return 0
    model = type(rows[0])
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.generated and f is not meta.auto_field]
    batches: dict[tuple, list[list]] = {}
    for row in rows:
        row._prepare_related_fields_for_save(operation_name="bulk_create")
        values = [(f, f.pre_save(row, add=True)) for f in fields]
        if row.pk is not None or any(hasattr(v, "resolve_expression") and not isinstance(v, DatabaseDefault)
                                     for _, v in values):
            model._default_manager.bulk_create(rows, ignore_conflicts=ignore_conflicts)
            return None
        kept = [(f, v) for f, v in values if not isinstance(v, DatabaseDefault)]
        batches.setdefault(tuple(f.name for f, _ in kept), []).append(
            [f.get_db_prep_save(v, connection) for f, v in kept])
    inserted: int | None = 0
    with connection.cursor() as cursor:
        for names, params in batches.items():
            statement = prepared_statement(("insert", meta.label, names, ignore_conflicts))
            if len(params) == 1:
                cursor.execute(statement, params[0])
            else:
                cursor.executemany(statement, params)
            inserted = None if inserted is None or cursor.rowcount < 0 else inserted + cursor.rowcount
    return inserted


# Built once per database (and set of fields): the ORM would compile the same SQL for every run,
# every time (docs/PERFORMANCE.md).
_statements: dict[tuple[str, Any], str] = {}


def prepared_statement(name: str | tuple) -> str:
    """The prepared SQL named `name`, built on first use for the connection's database."""
    key = (connection.vendor, name)
    statement = _statements.get(key)
    if statement is None:
        statement = _statements[key] = _build_statement(name)
    return statement


def _build_statement(name: str | tuple) -> str:
    qn = connection.ops.quote_name
    if isinstance(name, tuple) and name[0] == "insert":
        _, label, names, ignore_conflicts = name
        meta = apps.get_model(label)._meta
        fields = [meta.get_field(field) for field in names]
        on_conflict = OnConflict.IGNORE if ignore_conflicts else None
        return (f"{connection.ops.insert_statement(on_conflict=on_conflict)} {qn(meta.db_table)} "
                f"({', '.join(qn(f.column) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))}) "
                f"{connection.ops.on_conflict_suffix_sql(fields, on_conflict, None, None)}").rstrip()
    column = lambda field: qn(RunUsage._meta.get_field(field).column)  # noqa: E731
    table = qn(RunUsage._meta.db_table)
    if name == "live_ledger":
        sets = ", ".join(f"{column(field)} = %s" for field in (*TOKEN_FIELDS, "model_calls", "live_ledger"))
        return f"UPDATE {table} SET {sets} WHERE {column('run_id')} = %s AND {column('status')} = %s"
    if name == "has_usage_row":
        return f"SELECT 1 FROM {table} WHERE {column('run_id')} = %s LIMIT 1"
    if name == "username":
        users = get_user_model()
        user_column = lambda field: qn(users._meta.get_field(field).column)  # noqa: E731
        return (f"SELECT {user_column(users.USERNAME_FIELD)} FROM {qn(users._meta.db_table)} "
                f"WHERE {qn(users._meta.pk.column)} = %s")
    _, fields = name  # end_running
    sets = ", ".join(f"{column(field)} = %s" for field in fields)
    return f"UPDATE {table} SET {sets} WHERE {column('run_id')} = %s AND {column('status')} = %s"
