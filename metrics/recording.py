"""Writing a run's usage: its RunUsage row, its ModelCall ledger and its delegation failures.

A run's row is written in three steps, all sync (from async code through
chat.storage.executor.run_db):
- `record_running`, when the run is admitted (in its session claim's transaction): the row with
  status `running` and the worker that owns it;
- `update_live_ledgers`, while it runs: the tokens of the calls completed so far, by its worker,
  a few times a run at most;
- `record_run` (the run's final transaction) or `close_running` (another worker closing the run
  of a worker that died): the terminal status, priced ledger and delegation failures.

A session's naming call has no running row: `record_ended` writes its row once, when it has ended.

The per-run statements (the usage row's INSERT at admission, the live ledger's UPDATE, the
terminal UPDATE of the running row and the checks after it, the ledger's and the failures'
INSERTs) are prepared SQL, built once per database (metrics.statements): through the ORM most of
their CPU was Django compiling the same query for every run (docs/PERFORMANCE.md). A paused run's
row is continued or expired by metrics.paused_runs.

Only a `running` row is ever given a terminal status (`UPDATE ... WHERE status = 'running'`), so
of a final write and a close racing for one run exactly one wins, and a retried flush never
counts anything twice. Every other write is INSERT ... ON CONFLICT DO NOTHING on a unique key
(run_id; run + agent + provider + model; run + kind + member).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from .models import TOKEN_FIELDS, DelegationFailure, FailureKind, ModelCall, Pricing, RunStatus, RunUsage
from .pricing import price, rules_in_force
from .statements import end_running, has_usage_row, insert_rows, prepared_statement

USAGE_FIELDS = frozenset(f.name for f in RunUsage._meta.get_fields() if f.concrete and f.name != "id")
# Computed here from the calls, never taken from the caller.
DERIVED_FIELDS = frozenset({"cost", "pricing", "unpriced_tokens", "live_ledger"})
# Who a run is billed to: set once, on its running row (record_running).
_OWNER_FIELDS = frozenset({"user_id", "account_id", "username"})
# What a running row holds from its admission on (record_running).
RUNNING_FIELDS = frozenset({"run_id", "user_id", "username", "session_id", "request_id", "team_id", "model",
                            "deep_research", "streamed", "started_at", "worker"})
FAILURE_FIELDS = frozenset({"kind", "member", "excerpt", "created_at"})
KINDS = frozenset(FailureKind.values)


def _check_fields(fields: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(fields) - allowed - {"user_id"}
    if unknown:
        raise ValueError(f"unknown RunUsage fields: {sorted(unknown)}")


def billed_to(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with who the run is billed to: `account_id` and `username` always (a snapshot that
    outlives the account), `user_id` only while the account exists (else NULL).

    A user deleted while a run of theirs was live would otherwise fail the usage write on the
    foreign key, and a write that can never succeed would be retried as if the database were down.
    (A deletion racing this check fails the transaction on the foreign key at commit; the run
    service then writes the usage alone, and this check finds the account gone.) Sync: one query.
    """
    user_id = fields.get("user_id")
    if user_id is None:
        return fields
    with connection.cursor() as cursor:
        cursor.execute(prepared_statement("username"), [user_id])
        row = cursor.fetchone()
    name = None if row is None else row[0]
    return {**fields, "account_id": user_id, "user_id": user_id if name is not None else None,
            "username": str(name if name is not None else fields.get("username") or "")[:150]}


def record_run_usage(fields: dict[str, Any]) -> None:
    """Insert the usage row of one run without its ledger (its cost is then unknown: unpriced).

    Kept for callers that have no per-model ledger; `record_run` is the full write.
    """
    _check_fields(fields, USAGE_FIELDS)
    fields = billed_to(fields)
    fields = {"pricing": Pricing.UNPRICED, "unpriced_tokens": fields.get("total_tokens", 0), **fields}
    insert_rows([RunUsage(**fields)], ignore_conflicts=True)


def _call_row(run_id: str, team_id: str, entry: dict[str, Any], rules) -> ModelCall:
    tokens = {name: int((entry.get("tokens") or {}).get(name) or 0) for name in TOKEN_FIELDS}
    priced = price(entry.get("provider") or "", entry.get("model") or "", tokens, rules=rules)
    reported = entry.get("provider_cost")
    estimated = min(int(entry.get("estimated_tokens") or 0), tokens["total_tokens"])
    return ModelCall(
        run_id=run_id,
        agent=str(entry.get("agent") or "")[:128],
        is_leader=bool(team_id) and entry.get("agent") == team_id,
        provider=str(entry.get("provider") or "")[:64],
        model=str(entry.get("model") or "")[:128],
        calls=int(entry.get("calls") or 0),
        **tokens,
        estimated=estimated > 0,
        estimated_tokens=estimated,
        cost=priced.cost,
        pricing=priced.pricing,
        price_rule=priced.rule,
        price_snapshot=priced.snapshot,
        provider_reported_cost=None if reported is None else Decimal(str(reported)),
    )


def run_cost(rows: Iterable[ModelCall]) -> tuple[Decimal | None, str, int]:
    """(cost, pricing, unpriced_tokens) of a run from its ledger rows.

    cost is the exact sum of the priced rows; pricing says whether that covers every call
    ('priced'; also a run that made no call: its cost is a true 0), some ('partial') or none
    ('unpriced', cost None). The tokens of unpriced rows are the run's coverage gap.
    """
    rows = list(rows)
    priced = [r for r in rows if r.pricing == Pricing.PRICED]
    gap = sum(r.total_tokens or (r.input_tokens + r.output_tokens) for r in rows if r.pricing != Pricing.PRICED)
    if len(priced) == len(rows):
        return sum((r.cost for r in priced), Decimal("0")), Pricing.PRICED, 0
    if priced:
        return sum((r.cost for r in priced), Decimal("0")), Pricing.PARTIAL, gap
    return None, Pricing.UNPRICED, gap


def failure_rows(usage_fields: dict[str, Any], failures: Iterable[dict[str, Any]]) -> list[DelegationFailure]:
    rows = []
    for failure in failures:
        unknown = set(failure) - FAILURE_FIELDS
        if unknown or failure.get("kind") not in KINDS:
            raise ValueError(f"not a delegation failure: {failure!r}")
        extra = {"created_at": failure["created_at"]} if failure.get("created_at") else {}
        rows.append(DelegationFailure(
            run_id=usage_fields["run_id"], session_id=usage_fields.get("session_id", ""),
            user_id=usage_fields.get("user_id"), model=usage_fields.get("model", ""), kind=failure["kind"],
            member=str(failure.get("member") or "")[:128], excerpt=str(failure.get("excerpt") or "")[:500], **extra,
        ))
    return rows


def record_delegation_failures(usage_fields: dict[str, Any], failures: Iterable[dict[str, Any]]) -> None:
    """Record delegation failures of a run (idempotent per run, kind and member).

    `usage_fields` needs run_id and may carry session_id, user_id and model; each failure is
    a dict with kind, member, excerpt (and optionally created_at). Usable while the run is
    live (a stalled member) as well as in the final write.
    """
    failures = list(failures)
    if failures:
        rows = failure_rows(billed_to(usage_fields), failures)
        insert_rows(rows, ignore_conflicts=True)


def record_running(fields: dict[str, Any]) -> None:
    """Insert the usage row of a run just admitted: status `running`, owned by `fields["worker"]`.

    Called inside the transaction that claims the run's session (chat.storage.buffer), so a run
    is on record before any model call. Its terminal write (`record_run`) updates this row.
    """
    unknown = set(fields) - RUNNING_FIELDS
    if unknown:
        raise ValueError(f"not fields of a running usage row: {sorted(unknown)}")
    # The account exists (the run was just admitted for it, and its session claimed in this
    # transaction): no lookup needed to name it.
    insert_rows([RunUsage(**fields, account_id=fields.get("user_id"), status=RunStatus.RUNNING,
                                           pricing=Pricing.UNPRICED)])


def _priced(run_id: str, team_id: str, started_at: datetime, calls: list[dict[str, Any]]):
    rules = rules_in_force(started_at, {c.get("provider") or "" for c in calls}) if calls else []
    rows = [_call_row(run_id, team_id, entry, rules) for entry in calls]
    return rows, run_cost(rows)


def record_run(usage_fields: dict[str, Any], calls: list[dict[str, Any]],
               failures: Iterable[dict[str, Any]] = ()) -> Decimal | None:
    """Write a run's terminal usage, its per agent x model ledger and its delegation failures.

    `usage_fields`: the RunUsage fields (run_id, user_id, started_at, status, tokens, ...; not
    cost, pricing or unpriced_tokens, which are computed here). `calls`: one dict per agent x
    model, as chat's RunAccount.by_model holds them: agent, model, provider, calls, tokens (a dict
    with agno's token names), estimated_tokens (how many of them were counted locally) and, when
    the provider reported one, provider_cost. Each is priced with the rule in force at the run's
    started_at.

    The run's `running` row (record_running) becomes this; a run with no row gets one. Returns the
    run's cost (None when unpriced, or when the run already had a terminal row: the first
    terminal write is the run's record, a retry or a late one adds nothing).
    """
    return record_terminal(usage_fields, calls, failures)[1]


def record_terminal(usage_fields: dict[str, Any], calls: list[dict[str, Any]],
                    failures: Iterable[dict[str, Any]] = (), *, running: bool = True) -> tuple[bool, Decimal | None]:
    """See record_run(); (whether this was the run's first terminal write, its cost). False: the run
    already had a terminal row (a retry of its own write, or a close by another process: nothing
    was written). `running=False`: the call never had a running row (record_ended), so its
    row's UPDATE and the check after it are not tried."""
    _check_fields(usage_fields, USAGE_FIELDS - DERIVED_FIELDS)
    run_id = usage_fields["run_id"]
    rows, (cost, pricing, gap) = _priced(run_id, usage_fields.get("team_id", ""), usage_fields["started_at"], calls)
    with transaction.atomic():
        # The running row already names the user (`account_id`, `username`: record_running), and
        # keeps `user` as the account's deletion left it: the terminal write touches neither.
        ended = running and end_running(
            run_id, {**{k: v for k, v in usage_fields.items() if k not in _OWNER_FIELDS},
                     "cost": cost, "pricing": pricing, "unpriced_tokens": gap, "live_ledger": None})
        if not ended:
            if running and has_usage_row(run_id):
                return False, None  # already terminal: the first terminal write is the run's record
            usage_fields = billed_to(usage_fields)
            if insert_rows([RunUsage(**usage_fields, cost=cost, pricing=pricing, unpriced_tokens=gap)],
                           ignore_conflicts=True) == 0:
                return False, None  # written before (a retry after a lost commit): the same
        insert_rows(rows, ignore_conflicts=True)
        record_delegation_failures(usage_fields, failures)
    return True, cost


def record_ended(usage_fields: dict[str, Any], calls: list[dict[str, Any]]) -> Decimal | None:
    """The usage row and priced ledger of a call that never had a `running` row: a session's
    naming call (chat.runs.naming), whose row is written once, when it has ended. What
    `record_run` stores for it, without the terminal UPDATE of a running row and the check after
    it, which find nothing for such a call: two statements fewer per naming call. A retry after a
    commit whose answer was lost adds nothing: its usage row's INSERT ... ON CONFLICT DO NOTHING
    inserts no row, and then nothing else is written. The call's cost, or None when it had a row
    already, as `record_run` returns them. Sync."""
    return record_terminal(usage_fields, calls, running=False)[1]


def close_running(run_id: str, *, status: str, error_type: str, error_message: str,
                  finished_at: datetime) -> dict[str, Any] | None:
    """End a `running` row from what it holds (its worker is gone): the calls of its live ledger
    priced as `record_run` prices them, the given terminal status. Sync, in a transaction.

    Returns the row's fields as written (run_id, user_id, session_id, team_id, tokens, cost, ...),
    or None when the row was not running (already ended, by its worker or another closer).
    """
    row = RunUsage.objects.filter(run_id=run_id, status=RunStatus.RUNNING).values().first()
    if row is None:
        return None
    calls = row["live_ledger"] or []
    rows, (cost, pricing, gap) = _priced(run_id, row["team_id"], row["started_at"], calls)
    tokens = {name: sum(int((c.get("tokens") or {}).get(name) or 0) for c in calls) for name in TOKEN_FIELDS}
    started = row["started_at"]
    fields = {
        "status": status, "error_type": error_type, "error_message": error_message[:2000],
        "finished_at": finished_at, "duration_ms": max(0, int((finished_at - started).total_seconds() * 1000)),
        **tokens, "model_calls": sum(int(c.get("calls") or 0) for c in calls),
        "estimated_tokens": sum(int(c.get("estimated_tokens") or 0) for c in calls),
        "cost": cost, "pricing": pricing, "unpriced_tokens": gap, "live_ledger": None,
    }
    with transaction.atomic():
        # The WHERE decides a race with the run's own final write (or another closer): one wins.
        if not end_running(run_id, fields):
            return None
        insert_rows(rows, ignore_conflicts=True)
    return {**row, **fields}


def update_live_ledgers(tallies: list[tuple[str, dict[str, int], int, list[dict[str, Any]]]]) -> None:
    """Store the calls completed so far of running runs: (run_id, tokens by kind, model calls,
    ledger as `record_run`'s `calls`) each. One prepared statement for them all; a run that is no
    longer running is left as it is. Sync.
    """
    if not tallies:
        return
    statement = prepared_statement("live_ledger")
    ledger_field = RunUsage._meta.get_field("live_ledger")
    with connection.cursor() as cursor:
        cursor.executemany(statement, [
            [*(int(tokens.get(name) or 0) for name in TOKEN_FIELDS), calls,
             ledger_field.get_db_prep_save(ledger, connection), run_id, RunStatus.RUNNING]
            for run_id, tokens, calls, ledger in tallies
        ])
