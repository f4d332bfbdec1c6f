"""Rows for metrics tests: price rules, usage fields and ledger entries with known numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from metrics.models import PriceRule

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def rule(provider="scripted", pattern="scripted", inp="1.00", out="2.00", *, read=None, write=None, reasoning=None,
         cache_in_input=True, reasoning_in_output=True, start=datetime(2026, 1, 1, tzinfo=UTC), end=None) -> PriceRule:
    d = lambda v: None if v is None else Decimal(v)  # noqa: E731
    return PriceRule.objects.create(
        provider=provider, model_pattern=pattern, input_per_million=Decimal(inp), output_per_million=Decimal(out),
        cache_read_per_million=d(read), cache_write_per_million=d(write), reasoning_per_million=d(reasoning),
        cache_in_input=cache_in_input, reasoning_in_output=reasoning_in_output, effective_from=start,
        effective_to=end)


def usage(run_id="run-1", *, user=None, started=T0, status="completed", model="scripted:scripted", **extra) -> dict:
    fields = dict(run_id=run_id, user_id=user.pk if user else None, session_id="s-1", team_id="cirkelline",
                  model=model, status=status, started_at=started, finished_at=started, duration_ms=1000)
    fields.update(extra)
    return fields


def call(agent="cirkelline", model="scripted", provider="Scripted", calls=1, **tokens) -> dict:
    full = dict.fromkeys(("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
                          "cache_write_tokens"), 0)
    full.update(tokens)
    if "total_tokens" not in tokens:
        full["total_tokens"] = full["input_tokens"] + full["output_tokens"]
    return {"agent": agent, "model": model, "provider": provider, "calls": calls, "tokens": full}
