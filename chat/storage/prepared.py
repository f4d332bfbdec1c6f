"""The naming call's check and rename, and the token check's read of its user, as prepared SQL
statements (as chat.storage.final_write does for a run's claim and final write).

Each runs once or twice per run; through the ORM most of their CPU is Django compiling the same
query again (docs/PERFORMANCE.md has the figures). Here the SQL is built once per database vendor
and only the values are prepared per call. The ORM queries they stand for stay as QuerySet
methods (`ChatSession.objects.awaiting_name`, `name_by_model`) and `user_for_token_orm`, the
references tests/storage/test_prepared.py compares them with on both databases.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import connection

from chat.models import COMPLETED_STATUS, ChatRun, ChatSession, NamedBy, TokenVersion


class _Statements(NamedTuple):
    awaiting_name: str
    name_by_model: str
    user_for_token: str


def _column(model, name: str, alias: str = "") -> str:
    column = connection.ops.quote_name(model._meta.get_field(name).column)
    return f"{alias}.{column}" if alias else column


@functools.cache
def _statements(vendor: str) -> _Statements:
    qn = connection.ops.quote_name
    users = get_user_model()
    s, r = qn(ChatSession._meta.db_table), qn(ChatRun._meta.db_table)
    sc, rc = functools.partial(_column, ChatSession), functools.partial(_column, ChatRun)
    # The ORM reads the session's pk, then up to two of its completed top-level runs: one
    # statement here, the same count (the join is on the session's pk, as the ORM's second query).
    awaiting_name = (
        f"SELECT COUNT(*) FROM (SELECT {rc('id', 'r')} FROM {r} r INNER JOIN {s} s ON {rc('session', 'r')} = "
        f"{sc('id', 's')} WHERE {sc('user', 's')} = %s AND {sc('session_id', 's')} = %s AND "
        f"{sc('named_by', 's')} = %s AND {rc('parent_run_id', 'r')} IS NULL AND {rc('status', 'r')} = %s "
        f"LIMIT 2) answers"
    )
    name_by_model = (
        f"UPDATE {s} SET {sc('session_name')} = %s, {sc('named_by')} = %s "
        f"WHERE {sc('user')} = %s AND {sc('session_id')} = %s AND {sc('named_by')} = %s"
    )
    uc = functools.partial(_column, users)
    tc = functools.partial(_column, TokenVersion)
    user_for_token = (
        f"SELECT {uc('username', 'u')}, {uc('is_staff', 'u')}, {uc('is_active', 'u')}, {tc('version', 't')} "
        f"FROM {qn(users._meta.db_table)} u LEFT OUTER JOIN {qn(TokenVersion._meta.db_table)} t "
        f"ON {tc('user', 't')} = {uc('id', 'u')} WHERE {uc('id', 'u')} = %s"
    )
    return _Statements(awaiting_name, name_by_model, user_for_token)


def awaiting_name(user_pk: int, session_id: str) -> bool:
    """`ChatSession.objects.awaiting_name`: whether the user's session still has its first message's
    name and exactly one answer (one completed top-level run). Sync: one query."""
    with connection.cursor() as cursor:
        cursor.execute(_statements(connection.vendor).awaiting_name,
                       [user_pk, session_id, NamedBy.MESSAGE.value, COMPLETED_STATUS])
        return cursor.fetchone()[0] == 1


def name_by_model(user_pk: int, session_id: str, name: str) -> bool:
    """`ChatSession.objects.name_by_model`: the model's `name` for the user's session if it still
    has its first message's name (one conditional UPDATE); whether it did. Sync."""
    prep = ChatSession._meta.get_field("session_name").get_db_prep_save
    with connection.cursor() as cursor:
        cursor.execute(_statements(connection.vendor).name_by_model,
                       [prep(name, connection), NamedBy.MODEL.value, user_pk, session_id, NamedBy.MESSAGE.value])
        return cursor.rowcount > 0


def user_for_token(pk: int) -> tuple[str, bool, bool, int | None] | None:
    """(username, is_staff, is_active, token version or None) of user `pk`, or None: what
    `user_for_token_orm` reads. Sync: one query by primary key."""
    with connection.cursor() as cursor:
        cursor.execute(_statements(connection.vendor).user_for_token, [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    username, is_staff, is_active, version = row
    return username, bool(is_staff), bool(is_active), version


def user_for_token_orm(pk: int) -> tuple[str, bool, bool, int | None] | None:
    """`user_for_token` through the ORM (its reference)."""
    return (get_user_model().objects.filter(pk=pk)
            .values_list("username", "is_staff", "is_active", "token_version__version").first())
