"""A run's session claim and its final write as prepared SQL statements (SQLite 3.35+, PostgreSQL).

A run claims its session id when it is admitted (one INSERT that does nothing if the id is
taken, or for an existing session one SELECT; the owner's profile and, for an existing session,
the status of its last run ride along) and ends with an update of that session and an upsert of
its team and member runs.
Through the ORM most of the final write's CPU is Django compiling the same SQL over and over
(docs/PERFORMANCE.md has the figures); here the statements are built once per database vendor
and only the values are prepared per run (with the model fields' own `get_db_prep_save`, so JSON and
datetimes are stored exactly as the ORM would store them). The owner guard is part of the SQL:
a write never touches a session or run that belongs to another user, and the final write never
creates a session (one deleted while its run was live stays deleted).

A run closed by the reaper (its worker's lease ran out: chat.runs.reaper) is marked so in its
stored payload (`closed_by`: `reaper`). That row is final: the run upsert's conflict clause
never updates it, so a late write of the run's worker (its final write, or agno's writes after
it) cannot replace the "interrupted" answer the run was closed and billed with.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from django.db import connection

from chat.models import ChatRun, ChatSession
from chat.payload import storable
from chat.personal.models import Profile

# The payload key and value the reaper closes a run's row with (chat.runs.reaper): no later write
# of the run replaces that row.
CLOSED_BY = "closed_by"
REAPER = "reaper"

# The profile columns the claim of a new session returns (chat.context.UserProfile's fields).
PROFILE_COLUMNS = ("display_name", "timezone", "custom_instructions", "memories_enabled")


class _Statements(NamedTuple):
    claim_session: str
    claimed_session: str
    update_session: str
    owned_session: str
    upsert_runs: str
    insert_running_run: str
    settle_running_run: str
    reaped_run: str


def _column(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


@functools.cache
def _statements(vendor: str) -> _Statements:
    qn = connection.ops.quote_name
    s, r = qn(ChatSession._meta.db_table), qn(ChatRun._meta.db_table)
    sc = functools.partial(_column, ChatSession)
    rc = functools.partial(_column, ChatRun)
    session_cols = [sc(n) for n in ("session_id", "user", "session_type", "team_id", "session_name", "data",
                                    "created_at", "updated_at")]
    # A new session's run needs its owner's profile: it rides along the claim (RETURNING
    # subqueries) instead of costing a query of its own.
    p = qn(Profile._meta.db_table)
    profile = ", ".join(f"(SELECT {_column(Profile, n)} FROM {p} WHERE {_column(Profile, 'user')} = %s)"
                        for n in PROFILE_COLUMNS)
    claim_session = (
        f"INSERT INTO {s} ({', '.join(session_cols)}) VALUES ({', '.join(['%s'] * len(session_cols))}) "
        f"ON CONFLICT ({sc('session_id')}) DO NOTHING RETURNING {profile}"
    )
    # An existing session as a run's claim reads it, with what rides along: the status of its last
    # top-level run and its owner's profile (a LEFT JOIN: None without a profile row).
    rc = functools.partial(_column, ChatRun)
    claimed_session = (
        f"SELECT {s}.*, (SELECT r.{rc('status')} FROM {r} r WHERE r.{rc('session')} = {s}.{sc('id')} "
        f"AND r.{rc('parent_run_id')} IS NULL ORDER BY r.{rc('id')} DESC LIMIT 1) AS last_run_status, "
        f"{', '.join(f'p.{_column(Profile, n)}' for n in PROFILE_COLUMNS)} "
        f"FROM {s} LEFT JOIN {p} p ON p.{_column(Profile, 'user')} = {s}.{sc('user')} WHERE {s}.{sc('session_id')} = %s"
    )
    # The stored name wins over the one in agno's session: that is only the name the run's claim
    # loaded, and a name given meanwhile (the user's rename, the model's title: chat.runs.naming)
    # must outlast a run that was live while it was given.
    update_session = (
        f"UPDATE {s} SET "
        f"{sc('team_id')} = CASE WHEN %s <> '' THEN %s ELSE {sc('team_id')} END, "
        f"{sc('data')} = %s, {sc('updated_at')} = %s, "
        f"{sc('session_name')} = COALESCE(NULLIF({sc('session_name')}, ''), %s, %s) "
        f"WHERE {sc('session_id')} = %s AND {sc('user')} = %s RETURNING {sc('id')}"
    )
    owned_session = f"SELECT {sc('id')} FROM {s} WHERE {sc('session_id')} = %s AND {sc('user')} = %s"
    # Whether a stored run row was closed by the reaper: its payload's `closed_by` (JSON text on
    # SQLite, jsonb on PostgreSQL).
    if vendor == "postgresql":
        def closed_by(table: str) -> str:
            return f"({table}.{rc('payload')} ->> '{CLOSED_BY}')"
    else:
        def closed_by(table: str) -> str:
            return f"json_extract({table}.{rc('payload')}, '$.{CLOSED_BY}')"
    run_cols = [rc(n) for n in ("run_id", "session", "user", "parent_run_id", "run_type", "component_id", "status",
                                "run_index", "payload", "created_at", "updated_at")]
    upsert_runs = (
        f"INSERT INTO {r} ({', '.join(run_cols)}) VALUES ({', '.join(['%s'] * len(run_cols))}) "
        f"ON CONFLICT ({rc('run_id')}) DO UPDATE SET {rc('status')} = excluded.{rc('status')}, "
        f"{rc('payload')} = excluded.{rc('payload')}, {rc('updated_at')} = excluded.{rc('updated_at')} "
        f"WHERE {r}.{rc('user')} = excluded.{rc('user')} "
        f"AND COALESCE({closed_by(r)}, '') <> '{REAPER}'"
    )
    reaped_run = (
        f"SELECT 1 FROM {r} WHERE {rc('run_id')} = %s AND {rc('user')} = %s AND {closed_by(r)} = '{REAPER}'"
    )
    # The run's own row from its admission on, in the user's session only (the owner guard is the
    # SELECT); agno's row replaces it (upsert_runs) when the run is stored.
    running_values = ", ".join("s." + sc("id") if col == rc("session") else "%s" for col in run_cols)
    insert_running_run = (
        f"INSERT INTO {r} ({', '.join(run_cols)}) SELECT {running_values} FROM {s} s "
        f"WHERE s.{sc('session_id')} = %s AND s.{sc('user')} = %s ON CONFLICT ({rc('run_id')}) DO NOTHING"
    )
    settle_running_run = (
        f"UPDATE {r} SET {rc('status')} = %s, {rc('payload')} = %s, {rc('updated_at')} = %s "
        f"WHERE {rc('run_id')} = %s AND {rc('user')} = %s AND {rc('status')} = 'RUNNING'"
    )
    return _Statements(claim_session, claimed_session, update_session, owned_session, upsert_runs, insert_running_run,
                       settle_running_run, reaped_run)


def _prep(model, name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def claim_session(cursor, *, session_id: str, user_pk: int, team_id: str, name: str, now) -> dict | None:
    """Create the session for `user_pk` unless the id is taken. If this call created it, the
    owner's profile columns (PROFILE_COLUMNS; None where they have no profile row), else None.

    One statement, atomic on both databases: of two runs claiming one new id at once, exactly
    one inserts (the unique index decides), the other's insert does nothing.
    """
    when = _prep(ChatSession, "updated_at", now)
    cursor.execute(_statements(connection.vendor).claim_session,
                   [session_id, user_pk, "team", team_id, storable(name), _prep(ChatSession, "data", {}), when, when,
                    *[user_pk] * len(PROFILE_COLUMNS)])
    row = cursor.fetchone()
    return None if row is None else dict(zip(PROFILE_COLUMNS, row, strict=True))


def claimed_session(session_id: str) -> ChatSession | None:
    """The session `session_id` (whoever owns it), for a run's claim, with what one statement reads
    along: `last_run_status` (its last top-level run's status, or None) and its owner's profile
    columns (PROFILE_COLUMNS, as attributes; None without a profile row). ChatSession.objects.raw
    applies the model fields' converters; through the ORM's query compiler this read cost ~4x the
    CPU (docs/PERFORMANCE.md)."""
    return next(iter(ChatSession.objects.raw(_statements(connection.vendor).claimed_session, [session_id])), None)


def update_session(cursor, *, session_id: str, user_pk: int, team_id: str, explicit_name: str | None,
                   fallback_name: str, data: dict, now) -> int | None:
    """Store agno's session state on `user_pk`'s session; its pk, or None if there is no such session."""
    when = _prep(ChatSession, "updated_at", now)
    cursor.execute(_statements(connection.vendor).update_session,
                   [team_id, team_id, _prep(ChatSession, "data", data), when, storable(explicit_name),
                    storable(fallback_name), session_id, user_pk])
    row = cursor.fetchone()
    return row[0] if row else None


def owned_session(cursor, session_id: str, user_pk: int) -> int | None:
    """The pk of `user_pk`'s session `session_id`, or None."""
    cursor.execute(_statements(connection.vendor).owned_session, [session_id, user_pk])
    row = cursor.fetchone()
    return row[0] if row else None


def insert_running_run(cursor, *, session_id: str, user_pk: int, row: dict, now) -> bool:
    """Store a run's own row as it starts (chat.records.running_run_row) in `user_pk`'s session
    `session_id`; False if there is no such session of theirs. Nothing happens if the run has a row."""
    when = _prep(ChatRun, "updated_at", now)
    cursor.execute(_statements(connection.vendor).insert_running_run, [
        row["run_id"], user_pk, row["parent_run_id"], row["run_type"], row["component_id"], row["status"],
        row["run_index"], _prep(ChatRun, "payload", row["payload"]), _prep(ChatRun, "created_at", row["created_at"]),
        when, session_id, user_pk,
    ])
    return cursor.rowcount == 1


def settle_running_run(cursor, *, user_pk: int, row: dict, now) -> None:
    """Give a run's own row, still as it started (RUNNING), its final status and payload `row`."""
    cursor.execute(_statements(connection.vendor).settle_running_run, [
        row["status"], _prep(ChatRun, "payload", row["payload"]), _prep(ChatRun, "updated_at", now), row["run_id"],
        user_pk,
    ])


def reaped_run(cursor, run_id: str, user_pk: int) -> bool:
    """Whether `user_pk`'s run `run_id` was closed by the reaper (its row is final)."""
    cursor.execute(_statements(connection.vendor).reaped_run, [run_id, user_pk])
    return cursor.fetchone() is not None


def upsert_runs(cursor, *, session_pk: int, user_pk: int, rows: list[dict], now) -> None:
    """Insert or update runs of a session (a run of another user, or one the reaper closed, is
    never touched)."""
    if not rows:
        return
    when = _prep(ChatRun, "updated_at", now)
    cursor.executemany(_statements(connection.vendor).upsert_runs, [
        [row["run_id"], session_pk, user_pk, row["parent_run_id"], row["run_type"], row["component_id"],
         row["status"], row["run_index"], _prep(ChatRun, "payload", row["payload"]),
         _prep(ChatRun, "created_at", row["created_at"]), when]
        for row in rows
    ])
