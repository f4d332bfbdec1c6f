"""Six usage rows over three days, two users, two models, every ending; and their delegation failures."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from metrics.models import DelegationFailure, RunUsage

GEMINI, LOCAL = "google:gemini-2.5-flash", "openai-like:local"


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=UTC)


@pytest.fixture
def report_rows(alice, bob):
    rows = [
        # run, user, model, start, status, duration, ttft, in, out, cost, pricing, unpriced tokens, delegations
        ("r1", alice, GEMINI, _at(1, 10), "completed", 1000, 200, 100, 50, "0.10000000", "priced", 0, 0),
        ("r2", alice, GEMINI, _at(1, 11), "error", 3000, None, 10, 0, "0.00000001", "priced", 0, 0),
        ("r3", alice, GEMINI, _at(2, 9), "completed", 2000, 400, 200, 100, "0.20000000", "priced", 0, 2),
        ("r4", bob, LOCAL, _at(2, 10), "cancelled", 500, 100, 40, 10, None, "unpriced", 50, 0),
        ("r5", bob, LOCAL, _at(3, 10), "rate_limited", 4000, None, 0, 0, "0", "priced", 0, 0),
        ("r6", bob, GEMINI, _at(3, 12), "timed_out", 10000, 900, 60, 40, "0.30000000", "partial", 20, 1),
    ]
    for run_id, user, model, start, status, duration, ttft, inp, out, cost, pricing, gap, delegations in rows:
        RunUsage.objects.create(
            run_id=run_id, user=user, session_id="s", team_id="cirkelline", model=model, status=status,
            started_at=start, finished_at=start, duration_ms=duration, ttft_ms=ttft, input_tokens=inp,
            output_tokens=out, total_tokens=inp + out, cost=None if cost is None else Decimal(cost), pricing=pricing,
            unpriced_tokens=gap, delegations=delegations)
    for run_id, kind, member, when in [("r1", "announced_not_executed", "research-specialist", _at(1, 10)),
                                       ("r3", "member_error", "audio-specialist", _at(2, 9)),
                                       ("r3", "member_stalled", "audio-specialist", _at(2, 9)),
                                       ("r6", "unknown_member", "legal-specialist", _at(3, 12))]:
        DelegationFailure.objects.create(run_id=run_id, kind=kind, member=member, model=GEMINI, created_at=when,
                                         excerpt=f"{kind} in {run_id}")
    return rows
