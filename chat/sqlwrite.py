"""The run's final write as three prepared SQL statements (SQLite 3.24+ and PostgreSQL).

Every run ends with an upsert of its session and of its team and member runs. Through the ORM
that costs ~3.5 ms of CPU a run, most of it Django compiling the same SQL over and over; here
the statements are built once per database vendor and only the values are prepared per run
(with the model fields' own `get_db_prep_save`, so JSON and datetimes are stored exactly as
the ORM would store them). The owner guard is part of the SQL: an upsert never touches a
session or run that belongs to another user.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection

from .models import ChatRun, ChatSession, storable


def _column(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


@functools.cache
def _statements(vendor: str) -> tuple[str, str, str]:
    qn = connection.ops.quote_name
    s, r = qn(ChatSession._meta.db_table), qn(ChatRun._meta.db_table)
    sc = functools.partial(_column, ChatSession)
    rc = functools.partial(_column, ChatRun)
    session_cols = [sc(n) for n in ("session_id", "user", "session_type", "team_id", "session_name", "data",
                                    "created_at", "updated_at")]
    upsert_session = (
        f"INSERT INTO {s} ({', '.join(session_cols)}) VALUES ({', '.join(['%s'] * len(session_cols))}) "
        f"ON CONFLICT ({sc('session_id')}) DO UPDATE SET "
        f"{sc('team_id')} = CASE WHEN excluded.{sc('team_id')} <> '' THEN excluded.{sc('team_id')} "
        f"ELSE {s}.{sc('team_id')} END, "
        f"{sc('data')} = excluded.{sc('data')}, "
        f"{sc('updated_at')} = excluded.{sc('updated_at')}, "
        f"{sc('session_name')} = COALESCE(%s, NULLIF({s}.{sc('session_name')}, ''), excluded.{sc('session_name')}) "
        f"WHERE {s}.{sc('user')} = excluded.{sc('user')}"
    )
    owner = f"SELECT {sc('id')}, {sc('user')} FROM {s} WHERE {sc('session_id')} = %s"
    run_cols = [rc(n) for n in ("run_id", "session", "user", "parent_run_id", "run_type", "component_id", "status",
                                "run_index", "payload", "created_at", "updated_at")]
    upsert_runs = (
        f"INSERT INTO {r} ({', '.join(run_cols)}) VALUES ({', '.join(['%s'] * len(run_cols))}) "
        f"ON CONFLICT ({rc('run_id')}) DO UPDATE SET {rc('status')} = excluded.{rc('status')}, "
        f"{rc('payload')} = excluded.{rc('payload')}, {rc('updated_at')} = excluded.{rc('updated_at')} "
        f"WHERE {r}.{rc('user')} = excluded.{rc('user')}"
    )
    return upsert_session, owner, upsert_runs


def _prep(model, name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def upsert_session(cursor, *, session_id: str, user_pk: int, session_type: str, team_id: str, insert_name: str,
                   explicit_name: str | None, data: dict, now) -> tuple[int, int] | None:
    """Insert or update a session (only if it is `user_pk`'s); its (pk, owner) afterwards."""
    upsert, _, _ = _statements(connection.vendor)
    when = _prep(ChatSession, "updated_at", now)
    cursor.execute(upsert, [session_id, user_pk, session_type, team_id, storable(insert_name),
                            _prep(ChatSession, "data", data), when, when, storable(explicit_name)])
    return session_owner(cursor, session_id)


def session_owner(cursor, session_id: str) -> tuple[int, int] | None:
    """(pk, owner) of a session, or None if it does not exist."""
    _, owner, _ = _statements(connection.vendor)
    cursor.execute(owner, [session_id])
    row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def upsert_runs(cursor, *, session_pk: int, user_pk: int, rows: list[dict], now) -> None:
    """Insert or update runs of a session (a run of another user is never touched)."""
    if not rows:
        return
    _, _, upsert = _statements(connection.vendor)
    when = _prep(ChatRun, "updated_at", now)
    cursor.executemany(upsert, [
        [row["run_id"], session_pk, user_pk, row["parent_run_id"], row["run_type"], row["component_id"],
         row["status"], row["run_index"], _prep(ChatRun, "payload", row["payload"]),
         _prep(ChatRun, "created_at", row["created_at"]), when]
        for row in rows
    ])
