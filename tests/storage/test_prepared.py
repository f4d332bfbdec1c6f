"""The prepared statements of the naming call's check and rename and of the token check's user
read (chat.storage.prepared) against the ORM queries they stand for, on SQLite and PostgreSQL
(run this file with DATABASE_URL for the latter); and that the run path compiles no query there."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from chat.identity import caller_for_token_user, token_claims
from chat.models import ChatRun, ChatSession, NamedBy, TokenVersion
from chat.runs import naming
from chat.storage import prepared
from tests.compiled import compiled_queries

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _session(user, session_id: str, named_by: str, runs: list[tuple[str | None, str]], name="First message"):
    """A session and its runs: (parent run id or None for a top-level run, status) each."""
    session = ChatSession.objects.create(session_id=session_id, user=user, session_name=name, named_by=named_by,
                                         created_at=NOW, updated_at=NOW)
    for index, (parent, status) in enumerate(runs):
        ChatRun.objects.create(run_id=f"{session_id}-r{index}", session=session, user=user, parent_run_id=parent,
                               run_type="agent" if parent else "team", status=status)
    return session


# (session id, named by, runs): each case of "awaits its name" and of not awaiting it
SESSIONS = [
    ("no-answer", NamedBy.MESSAGE, []),
    ("one-answer", NamedBy.MESSAGE, [(None, "COMPLETED")]),
    ("one-answer-and-its-member", NamedBy.MESSAGE,
     [(None, "COMPLETED"), ("one-answer-and-its-member-r0", "COMPLETED")]),
    ("two-answers", NamedBy.MESSAGE, [(None, "COMPLETED"), (None, "COMPLETED")]),
    ("one-answer-and-a-failure", NamedBy.MESSAGE, [(None, "ERROR"), (None, "COMPLETED"), (None, "RUNNING")]),
    ("only-a-member-answered", NamedBy.MESSAGE, [(None, "ERROR"), ("x", "COMPLETED")]),
    ("named-by-the-model", NamedBy.MODEL, [(None, "COMPLETED")]),
    ("named-by-the-user", NamedBy.USER, [(None, "COMPLETED")]),
]


def test_awaiting_name_reads_what_the_orm_query_reads(alice, bob):
    for session_id, named_by, runs in SESSIONS:
        _session(alice, session_id, named_by, runs)
    _session(bob, "bobs", NamedBy.MESSAGE, [(None, "COMPLETED")])
    answers = {}
    for user in (alice, bob):
        for session_id in [s[0] for s in SESSIONS] + ["bobs", "nobodys"]:
            got = prepared.awaiting_name(user.pk, session_id)
            assert got is ChatSession.objects.awaiting_name(user.pk, session_id), (user.username, session_id)
            answers[user.username, session_id] = got
    assert sorted(key for key, awaits in answers.items() if awaits) == [
        ("alice", "one-answer"), ("alice", "one-answer-and-a-failure"), ("alice", "one-answer-and-its-member"),
        ("bob", "bobs")]


def test_name_by_model_writes_what_the_orm_update_writes(alice, bob):
    """Twin sessions, one renamed through the ORM, the other by the prepared statement: the same
    answers and the same rows (a name the user gave is never replaced, another's session untouched)."""
    name = "Sourdough — en hurtig guide 🍞 " + "x" * 200
    for way in ("orm", "prepared"):
        for session_id, named_by, _runs in SESSIONS:
            _session(alice, f"{way}-{session_id}", named_by, [])
        _session(bob, f"{way}-bobs", NamedBy.MESSAGE, [])
    outcomes = {}
    for way, rename in (("orm", ChatSession.objects.name_by_model), ("prepared", prepared.name_by_model)):
        outcomes[way] = [rename(alice.pk, f"{way}-{session_id}", name)
                         for session_id in [s[0] for s in SESSIONS] + ["bobs", "nobodys"]]
    assert outcomes["orm"] == outcomes["prepared"] == [True] * 6 + [False] * 4

    def rows(way):
        return [(r["session_id"].removeprefix(f"{way}-"), r["session_name"], r["named_by"], r["updated_at"])
                for r in ChatSession.objects.filter(session_id__startswith=f"{way}-").order_by("session_id")
                .values("session_id", "session_name", "named_by", "updated_at")]
    assert rows("orm") == rows("prepared")
    assert ("bobs", "First message", NamedBy.MESSAGE, NOW) in rows("prepared")
    assert ("one-answer", name, NamedBy.MODEL, NOW) in rows("prepared")


def test_the_token_users_read_is_the_orm_querys(alice, bob, django_user_model):
    carol = django_user_model.objects.create_user("carol", password="carol-password-1", is_active=False)
    dave = django_user_model.objects.create_user("dave", password="dave-password-1", is_staff=True)
    TokenVersion.objects.create(user=bob, version=3)
    for pk in (alice.pk, bob.pk, carol.pk, dave.pk, 10**9):
        got = prepared.user_for_token(pk)
        expected = prepared.user_for_token_orm(pk)
        assert got == expected and [type(v) for v in got or ()] == [type(v) for v in expected or ()], pk
    assert prepared.user_for_token(bob.pk) == ("bob", False, True, 3)
    assert prepared.user_for_token(dave.pk) == ("dave", True, True, None)
    assert prepared.user_for_token(carol.pk) == ("carol", False, False, None)
    assert prepared.user_for_token(10**9) is None


def test_the_naming_check_and_the_token_check_compile_no_query(alice, django_assert_num_queries):
    """Guards against the run path's naming check (session awaiting its name, and the budget) and
    its token check going back to ORM queries, compiled on every call."""
    from metrics.models import Budget

    _session(alice, "one-answer", NamedBy.MESSAGE, [(None, "COMPLETED")])
    Budget.objects.create(user=alice, monthly_limit=1)
    token_user = token_claims(AccessToken.for_user(alice))
    naming._may_name(alice.pk, "one-answer", NOW), caller_for_token_user(*token_user)  # statements built
    with compiled_queries() as compiled, django_assert_num_queries(3):
        assert naming._may_name(alice.pk, "one-answer", NOW) is True
        assert caller_for_token_user(*token_user).username == "alice"
    assert compiled.count == 0
    with compiled_queries() as compiled:
        ChatSession.objects.awaiting_name(alice.pk, "one-answer")
    assert compiled.count > 0  # the patch sees a compiled query


def test_the_naming_calls_write_compiles_no_query(alice):
    """Guards against the naming call's write (its usage row, ledger and the session's new name,
    chat.runs.naming._store) going back to ORM queries, compiled on every call."""
    from metrics.models import ModelCall, RunUsage
    from tests.metrics.helpers import call, rule, usage

    rule()
    for session_id in ("warm", "one-answer"):
        _session(alice, session_id, NamedBy.MESSAGE, [(None, "COMPLETED")])
    written = lambda run_id, session_id: {**usage(run_id, user=alice), "session_id": session_id,  # noqa: E731
                                          "kind": "naming"}
    naming._store(written("warm", "warm"), [call(input_tokens=5)], "A title")
    with compiled_queries() as compiled:
        assert naming._store(written("naming", "one-answer"), [call(input_tokens=5)], "Sourdough") is True
    assert compiled.count == 0
    assert ChatSession.objects.get(session_id="one-answer").session_name == "Sourdough"
    assert (RunUsage.objects.get(run_id="naming").kind, ModelCall.objects.filter(run_id="naming").count()) == (
        "naming", 1)
