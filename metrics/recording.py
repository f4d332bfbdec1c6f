"""Writing a run's usage: its RunUsage row, its ModelCall ledger and its delegation failures.

The run service calls `record_run` once, inside its final transaction (sync; from async code
through chat.db.run_db). Every write is INSERT ... ON CONFLICT DO NOTHING on a unique key
(run_id; run + agent + provider + model; run + kind + member), and a run whose usage row exists
is not written again, so a retried flush never counts anything twice and a second call leaves
the first one's rows as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import TOKEN_FIELDS, DelegationFailure, FailureKind, ModelCall, Pricing, RunUsage
from .pricing import price, rules_in_force

USAGE_FIELDS = frozenset(f.name for f in RunUsage._meta.get_fields() if f.concrete and f.name != "id")
# Computed here from the calls, never taken from the caller.
DERIVED_FIELDS = frozenset({"cost", "pricing", "unpriced_tokens"})
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
    users = get_user_model()
    name = users._default_manager.filter(pk=user_id).values_list(users.USERNAME_FIELD, flat=True).first()
    return {**fields, "account_id": user_id, "user_id": user_id if name is not None else None,
            "username": str(name if name is not None else fields.get("username") or "")[:150]}


def record_run_usage(fields: dict[str, Any]) -> None:
    """Insert the usage row of one run without its ledger (its cost is then unknown: unpriced).

    Kept for callers that have no per-model ledger; `record_run` is the full write.
    """
    _check_fields(fields, USAGE_FIELDS)
    fields = billed_to(fields)
    fields = {"pricing": Pricing.UNPRICED, "unpriced_tokens": fields.get("total_tokens", 0), **fields}
    RunUsage.objects.bulk_create([RunUsage(**fields)], ignore_conflicts=True)


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
        DelegationFailure.objects.bulk_create(rows, ignore_conflicts=True)


def record_run(usage_fields: dict[str, Any], calls: list[dict[str, Any]],
               failures: Iterable[dict[str, Any]] = ()) -> Decimal | None:
    """Write a run's usage row, its per agent x model ledger and its delegation failures.

    `usage_fields`: the RunUsage fields (run_id, user_id, started_at, tokens, ...; not cost,
    pricing or unpriced_tokens, which are computed here). `calls`: one dict per agent x model,
    as chat's RunAccount.by_model holds them: agent, model, provider, calls, tokens (a dict with
    agno's token names), estimated_tokens (how many of them were counted locally) and, when the
    provider reported one, provider_cost. Each is priced with
    the rule in force at the run's started_at. Returns the run's cost (None when unpriced, or
    when the run was already recorded).
    """
    _check_fields(usage_fields, USAGE_FIELDS - DERIVED_FIELDS)
    run_id = usage_fields["run_id"]
    rules = rules_in_force(usage_fields["started_at"], {c.get("provider") or "" for c in calls}) if calls else []
    rows = [_call_row(run_id, usage_fields.get("team_id", ""), entry, rules) for entry in calls]
    cost, pricing, gap = run_cost(rows)
    with transaction.atomic():
        if RunUsage.objects.filter(run_id=run_id).exists():
            return None  # already recorded: the first write is the run's record, a retry adds nothing
        usage_fields = billed_to(usage_fields)
        RunUsage.objects.bulk_create(
            [RunUsage(**usage_fields, cost=cost, pricing=pricing, unpriced_tokens=gap)], ignore_conflicts=True)
        ModelCall.objects.bulk_create(rows, ignore_conflicts=True)
        DelegationFailure.objects.bulk_create(failure_rows(usage_fields, failures), ignore_conflicts=True)
    return cost
