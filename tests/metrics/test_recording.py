"""The usage row is written once per run, whatever retries the write."""

from decimal import Decimal

import pytest
from django.utils import timezone

from metrics.models import ModelCall, RunUsage
from metrics.recording import record_run_usage

pytestmark = pytest.mark.django_db


def test_recording_the_same_run_twice_keeps_one_row_unchanged(alice):
    now = timezone.now()
    fields = dict(run_id="r-1", user_id=alice.pk, session_id="s", team_id="cirkelline", status="completed",
                  total_tokens=10, started_at=now, finished_at=now)
    record_run_usage(fields)
    record_run_usage({**fields, "total_tokens": 999})
    assert list(RunUsage.objects.values_list("run_id", "total_tokens")) == [("r-1", 10)]


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError, match="unknown RunUsage fields"):
        record_run_usage({"run_id": "x", "tokens": 1})


# -- a run's row from its admission on: running, then exactly one terminal write --------------

def _running(run_id="r-run", user=None, worker="host:1:aa", started=None):
    from metrics.recording import record_running

    started = started or timezone.now()
    record_running(dict(run_id=run_id, user_id=user.pk if user else None, session_id="s", team_id="cirkelline",
                        model="scripted", started_at=started, worker=worker))
    return started


def test_the_final_write_ends_the_running_row_it_does_not_add_one(alice):
    """Guards against record_run inserting beside the running row (two rows) or, finding a row,
    leaving it `running` (the run would be lost in reports and closed later as worker_lost)."""
    from metrics.models import ModelCall
    from metrics.recording import record_run

    from .helpers import call, rule, usage

    rule()
    started = _running(user=alice)
    assert RunUsage.objects.get().status == "running"
    cost = record_run(usage("r-run", user=alice, started=started), [call(input_tokens=1_000_000)])
    row = RunUsage.objects.get()
    assert (row.status, row.worker, row.live_ledger, row.cost, cost) == (
        "completed", "host:1:aa", None, Decimal("1"), Decimal("1"))
    assert ModelCall.objects.count() == 1
    # A second terminal write (a retried flush, or the owner after another process closed it) adds nothing.
    assert record_run(usage("r-run", user=alice, started=started, status="cancelled"), [call(input_tokens=5)]) is None
    assert RunUsage.objects.get().status == "completed" and ModelCall.objects.count() == 1


def test_closing_a_running_row_bills_the_calls_of_its_live_ledger(alice):
    """Guards against closing a dead worker's run without its completed calls (the provider
    billed them; nobody here would have)."""
    from metrics.models import ModelCall
    from metrics.recording import close_running, record_run, update_live_ledgers

    from .helpers import call, rule, usage

    rule()
    started = _running(user=alice)
    ledger = [call(input_tokens=1_000_000, output_tokens=500_000),
              call(agent="research-specialist", calls=2, input_tokens=2_000_000)]
    tokens = {"input_tokens": 3_000_000, "output_tokens": 500_000, "total_tokens": 3_500_000}
    update_live_ledgers([("r-run", tokens, 3, ledger)])
    live = RunUsage.objects.get()
    assert (live.status, live.input_tokens, live.model_calls, live.live_ledger) == ("running", 3_000_000, 3, ledger)

    ended = timezone.now()
    closed = close_running("r-run", status="error", error_type="worker_lost", error_message="gone",
                           finished_at=ended)
    row = RunUsage.objects.get()
    assert closed is not None and closed["user_id"] == alice.pk
    assert (row.status, row.error_type, row.finished_at, row.live_ledger) == ("error", "worker_lost", ended, None)
    assert (row.input_tokens, row.output_tokens, row.total_tokens, row.model_calls) == (3_000_000, 500_000,
                                                                                        3_500_000, 3)
    assert row.cost == Decimal("4") and row.pricing == "priced"  # 1 + 1 (output at 2/M) + 2
    assert sorted(ModelCall.objects.values_list("agent", "calls")) == [("cirkelline", 1), ("research-specialist", 2)]
    # Exactly one terminal write: a second close, the owner's late final write, a late tally: no effect.
    assert close_running("r-run", status="error", error_type="worker_lost", error_message="", finished_at=ended) is None
    assert record_run(usage("r-run", user=alice, started=started), [call(input_tokens=9)]) is None
    update_live_ledgers([("r-run", {"input_tokens": 1}, 1, [])])
    assert RunUsage.objects.get().input_tokens == 3_000_000 and ModelCall.objects.count() == 2


def test_reports_and_budgets_leave_running_rows_out(alice):
    """A running row has no cost yet: counting it would show an unpriced run in every report."""
    from datetime import date

    from metrics.budgets import budget_status
    from metrics.models import Budget

    Budget.objects.create(user=alice, monthly_limit=Decimal("5"))
    now = timezone.now()
    _running(user=alice, started=now)
    record_run_usage(dict(run_id="r-done", user_id=alice.pk, session_id="s", team_id="cirkelline",
                          status="completed", pricing="priced", cost=Decimal("0"), started_at=now, finished_at=now))
    today = timezone.localdate(now)
    assert list(RunUsage.objects.for_period(today, today).values_list("run_id", flat=True)) == ["r-done"]
    assert RunUsage.objects.filter(user=alice).for_period(date(2000, 1, 1), today).usage_totals()["runs"] == 1
    assert budget_status(alice.pk, now).unpriced_runs == 0


# -- the final write's statements against the ORM queries they stand for ----------------------

def _usage_values(run_id: str) -> dict:
    row = RunUsage.objects.filter(run_id=run_id).values().get()
    return {k: v for k, v in row.items() if k not in ("id", "run_id")}


def _stored(run_id: str) -> tuple:
    """The row as the database holds it (no converters: a datetime's stored text on SQLite)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {RunUsage._meta.db_table} WHERE run_id = %s", [run_id])
        columns = [c[0] for c in cursor.description]
        return tuple(v for c, v in zip(columns, cursor.fetchone(), strict=True) if c not in ("id", "run_id"))


def test_ending_a_running_row_writes_what_the_orm_update_writes(alice):
    """Twin running rows, one ended through the ORM's UPDATE, the other by end_running (what
    record_run and close_running run): the same rows, field by field, and the same counts."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from metrics.recording import update_live_ledgers
    from metrics.statements import end_running

    started = datetime(2026, 12, 6, 9, 0, 0, 123456, tzinfo=UTC)
    for run_id in ("orm", "prepared"):
        _running(run_id, user=alice, started=started)
    update_live_ledgers([(run_id, {"input_tokens": 5}, 1, [{"agent": "a", "tokens": {"input_tokens": 5}}])
                         for run_id in ("orm", "prepared")])
    finished = (started + timedelta(seconds=3, microseconds=7)).astimezone(ZoneInfo("Europe/Copenhagen"))
    fields = dict(status="error", error_type="provider_error", error_message="Fejl — 🍞 \\ ' \" %s",
                  finished_at=finished, duration_ms=3000, ttft_ms=None,
                  input_tokens=2**40, output_tokens=7, total_tokens=2**40 + 7, retries=2, backoff_seconds=1.375,
                  streamed=False, model="openai:gpt-4.1-mini", kind="chat", deep_research=True,
                  cost=Decimal("1234567.12345678"), pricing="partial", unpriced_tokens=40, live_ledger=None)
    assert RunUsage.objects.filter(run_id="orm", status="running").update(**fields) == 1
    assert end_running("prepared", fields) == 1
    assert _usage_values("orm") == _usage_values("prepared")
    assert _stored("orm") == _stored("prepared")
    assert _usage_values("prepared")["live_ledger"] is None and _usage_values("prepared")["ttft_ms"] is None
    # A row that is not running any more is not touched, by either.
    assert RunUsage.objects.filter(run_id="orm", status="running").update(status="completed") == 0
    assert end_running("prepared", {"status": "completed"}) == 0
    assert _usage_values("prepared")["status"] == "error"


def test_who_a_run_is_billed_to_and_whether_it_has_a_row_read_what_the_orm_reads(alice, django_user_model):
    from django.contrib.auth import get_user_model

    from metrics.recording import billed_to
    from metrics.statements import has_usage_row

    gone = django_user_model.objects.create_user("gone")
    gone_pk = gone.pk
    gone.delete()
    users = get_user_model().objects
    for pk in (alice.pk, gone_pk):
        name = users.filter(pk=pk).values_list("username", flat=True).first()
        expected = {"user_id": pk if name else None, "account_id": pk, "username": name or "kept"}
        assert billed_to({"user_id": pk, "username": "kept", "run_id": "r"}) == {**expected, "run_id": "r"}
    assert billed_to({"user_id": None, "run_id": "r"}) == {"user_id": None, "run_id": "r"}
    _running("there", user=alice)
    for run_id in ("there", "not-there"):
        assert has_usage_row(run_id) is RunUsage.objects.filter(run_id=run_id).exists()
    assert has_usage_row("there") and not has_usage_row("not-there")


def test_a_runs_final_write_compiles_no_query_for_its_usage_row(alice):
    """Guards against the final write's usage statements (the running row's UPDATE, the checks
    after it) going back to ORM queries, compiled for every run."""
    from metrics.recording import billed_to, record_run
    from tests.compiled import compiled_queries

    from .helpers import usage

    billed_to({"user_id": alice.pk})
    for run_id in ("warm", "r-run", "gone"):
        _running(run_id, user=alice)
    record_run(usage("warm", user=alice), [])
    RunUsage.objects.filter(run_id="gone").update(status="completed")
    with compiled_queries() as compiled:
        record_run(usage("r-run", user=alice), [])
        assert record_run(usage("gone", user=alice), []) is None  # ended already: the check reads it
        assert billed_to({"user_id": alice.pk})["username"] == "alice"  # a run without a running row
    assert compiled.count == 0
    assert RunUsage.objects.get(run_id="r-run").status == "completed"


def _stored_rows(model, where: str, params: list) -> list[tuple]:
    """A model's rows as the database holds them, without their ids (no converters)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {model._meta.db_table} WHERE {where} ORDER BY id", params)
        columns = [c[0] for c in cursor.description]
        return [tuple(v for c, v in zip(columns, row, strict=True) if c != "id") for row in cursor.fetchall()]


def test_rows_are_inserted_as_the_orms_bulk_create_inserts_them(alice):
    """insert_rows (the usage row at admission and at a write without one, the ledger, the
    delegation failures) against bulk_create: the same stored values, a database default left to
    the database, a conflict ignored or refused as the ORM's INSERT ignores or refuses it."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from django.db import IntegrityError, transaction

    from metrics.models import DelegationFailure, ModelCall
    from metrics.pricing import snapshot
    from metrics.statements import insert_rows

    from .helpers import rule

    price = rule("openai", "gpt-t", "1.5", "2")
    started = datetime(2026, 12, 6, 9, 0, 0, 123456, tzinfo=ZoneInfo("Europe/Copenhagen"))

    def usage_rows(prefix):
        return [RunUsage(run_id=f"{prefix}-running", user_id=alice.pk, account_id=alice.pk, username="alice",
                         session_id="s", team_id="cirkelline", model="m", started_at=started, worker="w",
                         status="running", pricing="unpriced"),  # kind: its database default
                RunUsage(run_id=f"{prefix}-naming", user_id=alice.pk, account_id=alice.pk, username="Ålice 🍞",
                         session_id="s", kind="naming", model="openai:gpt-t", status="completed",
                         started_at=started, finished_at=started.astimezone(UTC), duration_ms=3, streamed=False,
                         input_tokens=2**40, total_tokens=2**40, backoff_seconds=0.125,
                         cost=Decimal("1234567.12345678"), pricing="partial", unpriced_tokens=4,
                         live_ledger=[{"agent": "a", "tokens": {"input_tokens": 1}}])]

    def ledger_rows(prefix):
        return [ModelCall(run_id=f"{prefix}-naming", agent="namer", is_leader=False, provider="openai", model="gpt-t",
                          calls=2, input_tokens=10, total_tokens=10, cost=Decimal("0.00001500"), pricing="priced",
                          price_rule=price, price_snapshot=snapshot(price), provider_reported_cost=Decimal("0.1")),
                ModelCall(run_id=f"{prefix}-naming", agent="member", provider="local", model="x", calls=1,
                          cost=None, pricing="unpriced", price_rule=None, price_snapshot=None)]

    def failure_rows(prefix):
        return [DelegationFailure(run_id=f"{prefix}-naming", session_id="s", user_id=alice.pk, model="m",
                                  kind="member_error", member="research-specialist", excerpt="Fejl — 'x'",
                                  created_at=started)]

    for build in (usage_rows, ledger_rows, failure_rows):
        build("orm")[0]._meta.model.objects.bulk_create(build("orm"), ignore_conflicts=True)
        insert_rows(build("prepared"), ignore_conflicts=True)
        # A second insert of the same keys: nothing happens, either way.
        build("orm")[0]._meta.model.objects.bulk_create(build("orm"), ignore_conflicts=True)
        insert_rows(build("prepared"), ignore_conflicts=True)
    for model in (RunUsage, ModelCall, DelegationFailure):
        orm, prepared = (_stored_rows(model, "run_id LIKE %s", [f"{p}-%"]) for p in ("orm", "prepared"))
        assert [tuple(str(v).replace("orm-", "prepared-") for v in row) for row in orm] == \
            [tuple(map(str, row)) for row in prepared], model
        assert len(prepared) == {RunUsage: 2, ModelCall: 2, DelegationFailure: 1}[model]
    assert RunUsage.objects.get(run_id="prepared-running").kind == "chat"  # the database's default
    # Without ignore_conflicts a duplicate is refused, as the ORM refuses it.
    for insert in (lambda: RunUsage.objects.bulk_create(usage_rows("prepared")[:1]),
                   lambda: insert_rows(usage_rows("prepared")[:1])):
        with pytest.raises(IntegrityError), transaction.atomic():
            insert()


def test_a_runs_final_write_and_its_admission_compile_no_query_for_their_usage(alice):
    """Guards against the usage row's INSERT at admission, and the ledger's and a naming call's
    usage row at the final write, going back to the ORM's compiled INSERTs."""
    from metrics.recording import record_run
    from tests.compiled import compiled_queries

    from .helpers import call, rule, usage

    rule()
    _running("warm", user=alice)
    record_run(usage("warm", user=alice), [call(input_tokens=5)])
    record_run(usage("warm-naming", user=alice), [call(input_tokens=5)])
    with compiled_queries() as compiled:
        _running("r-run", user=alice)
        record_run(usage("r-run", user=alice), [call(input_tokens=5), call(agent="member", input_tokens=7)])
        record_run(usage("naming", user=alice), [call(input_tokens=5)])  # no running row: inserted
    assert compiled.count == 0
    assert sorted(RunUsage.objects.filter(run_id__in=["r-run", "naming"]).values_list("run_id", "status")) == [
        ("naming", "completed"), ("r-run", "completed")]
    assert ModelCall.objects.filter(run_id__in=["r-run", "naming"]).count() == 3


def test_a_call_without_a_running_row_is_stored_as_the_final_write_stores_it_two_statements_fewer(alice):
    """A session's naming call has no running row: record_ended stores the row and ledger that
    record_run stores for it (every column), without the running row's UPDATE and the check after
    it; written again (a retry after a lost commit), it adds and changes nothing. Guards against
    the naming write going back to record_run's statements, or storing anything else."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from metrics.recording import record_ended, record_run
    from tests.compiled import compiled_queries

    from .helpers import call, rule, usage

    rule()
    ledger = [call(input_tokens=1_000_000, output_tokens=7), call(agent="namer", model="other", input_tokens=3)]
    fields = {"kind": "naming", "streamed": False, "total_tokens": 1_000_010, "model_calls": 2}
    record_run(usage("warm", user=alice, **fields), ledger)
    record_ended(usage("warm-ended", user=alice, **fields), ledger)
    with CaptureQueriesContext(connection) as reference:
        cost = record_run(usage("reference", user=alice, **fields), ledger)
    with CaptureQueriesContext(connection) as ended, compiled_queries() as compiled:
        assert record_ended(usage("ended", user=alice, **fields), ledger) == cost > 0
    assert compiled.count == 0
    assert len(reference.captured_queries) - len(ended.captured_queries) == 2
    assert not [q for q in ended.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    for model in (RunUsage, ModelCall):
        rows = {name: _stored_rows(model, "run_id = %s", [name]) for name in ("reference", "ended")}
        assert [tuple(str(v).replace("reference", "ended") for v in row) for row in rows["reference"]] == \
            [tuple(map(str, row)) for row in rows["ended"]], model
        assert len(rows["ended"]) == {RunUsage: 1, ModelCall: 2}[model]
    before = _stored_rows(RunUsage, "run_id = %s", ["ended"]), _stored_rows(ModelCall, "run_id = %s", ["ended"])
    assert record_ended(usage("ended", user=alice, **{**fields, "status": "error"}), [*ledger, call(agent="x")]) \
        is None
    assert (_stored_rows(RunUsage, "run_id = %s", ["ended"]), _stored_rows(ModelCall, "run_id = %s", ["ended"])) \
        == before
