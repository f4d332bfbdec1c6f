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


# -- the usage seed of GET /usage and its QuerySet methods (tests/metrics/test_usage_queries.py,
#    tests/api/test_usage.py): alice's runs over five days, bob's on one of them -------------

GEMINI, LOCAL = ("google", "gemini-2.5-flash"), ("openai-like", "local")


def _run(run_id, user, started, *, cost, pricing, unpriced=0, calls=(), kind="chat", **tokens):
    from metrics.models import ModelCall, RunUsage

    tokens.setdefault("total_tokens", tokens.get("input_tokens", 0) + tokens.get("output_tokens", 0))
    RunUsage.objects.create(run_id=run_id, user=user, session_id="s", team_id="cirkelline", model="m", kind=kind,
                            status="completed", started_at=started, finished_at=started,
                            cost=None if cost is None else Decimal(cost), pricing=pricing, unpriced_tokens=unpriced,
                            **tokens)
    for agent, (provider, model), n, call_cost, call_pricing, call_tokens in calls:
        call_tokens.setdefault("total_tokens", call_tokens.get("input_tokens", 0) + call_tokens.get("output_tokens", 0))
        ModelCall.objects.create(run_id=run_id, agent=agent, is_leader=agent == "cirkelline", provider=provider,
                                 model=model, calls=n, cost=None if call_cost is None else Decimal(call_cost),
                                 pricing=call_pricing, **call_tokens)


def seed_usage(alice, bob) -> None:
    """alice: a priced run at 23:30 UTC on 30 November, a partial one on 1 December, an unpriced one
    and a free (priced at 0) one on 3 December, one in October; bob: one big run on 1 December."""
    at = lambda month, day, hour, minute=0: datetime(2026, month, day, hour, minute, tzinfo=UTC)  # noqa: E731
    _run("a1", alice, at(11, 30, 23, 30), cost="0.10000000", pricing="priced", input_tokens=100, output_tokens=50,
         reasoning_tokens=5, cache_read_tokens=20, cache_write_tokens=3,
         calls=[("cirkelline", GEMINI, 2, "0.06000000", "priced",
                 dict(input_tokens=80, output_tokens=30, reasoning_tokens=5, cache_read_tokens=20,
                      cache_write_tokens=3)),
                ("research-specialist", GEMINI, 1, "0.04000000", "priced", dict(input_tokens=20, output_tokens=20))])
    _run("a2", alice, at(12, 1, 0, 10), cost="0.00000003", pricing="partial", unpriced=40, input_tokens=60,
         output_tokens=20,
         calls=[("cirkelline", GEMINI, 1, "0.00000003", "priced", dict(input_tokens=30, output_tokens=10)),
                ("research-specialist", LOCAL, 1, None, "unpriced", dict(input_tokens=30, output_tokens=10))])
    _run("a3", alice, at(12, 3, 12), cost=None, pricing="unpriced", unpriced=30, input_tokens=20, output_tokens=10,
         calls=[("cirkelline", LOCAL, 1, None, "unpriced", dict(input_tokens=20, output_tokens=10))])
    _run("a4", alice, at(12, 3, 13), cost="0", pricing="priced", input_tokens=7, output_tokens=3,
         calls=[("cirkelline", LOCAL, 1, "0", "priced", dict(input_tokens=7, output_tokens=3))])
    _run("a-october", alice, at(10, 1, 12), cost="9.00000000", pricing="priced", input_tokens=1000,
         calls=[("cirkelline", GEMINI, 1, "9.00000000", "priced", dict(input_tokens=1000))])
    _run("b1", bob, at(12, 1, 10), cost="5.00000000", pricing="priced", input_tokens=5000, output_tokens=5000,
         calls=[("cirkelline", ("openai", "gpt-4o"), 3, "4.00000000", "priced",
                 dict(input_tokens=4000, output_tokens=4000)),
                ("research-specialist", GEMINI, 1, "1.00000000", "priced",
                 dict(input_tokens=1000, output_tokens=1000))])


def seed_naming_call(alice) -> None:
    """A call that named one of alice's sessions, on 1 December: 30 + 5 tokens of Gemini, priced."""
    _run("a-naming", alice, datetime(2026, 12, 1, 0, 11, tzinfo=UTC), cost="0.00000100", pricing="priced",
         kind="naming", input_tokens=30, output_tokens=5,
         calls=[("naming", GEMINI, 1, "0.00000100", "priced", dict(input_tokens=30, output_tokens=5))])


def zero_day(day: str) -> dict:
    return {"day": day, "runs": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "reasoning_tokens": 0,
            "cache_read_tokens": 0, "cache_write_tokens": 0, "unpriced_tokens": 0, "pricing": "none",
            "cost": "0.00000000"}


# What GET /usage?from=2026-11-30&to=2026-12-04 answers alice (costs as the API writes them).
ALICE_TOTALS = {"runs": 4, "input_tokens": 187, "output_tokens": 83, "total_tokens": 270, "reasoning_tokens": 5,
                "cache_read_tokens": 20, "cache_write_tokens": 3, "unpriced_tokens": 70, "pricing": "partial",
                "cost": "0.10000003"}
ALICE_BY_KIND = [{"kind": "chat", **ALICE_TOTALS}]
ALICE_BY_DAY = [
    {"day": "2026-11-30", "runs": 1, "input_tokens": 100, "output_tokens": 50, "total_tokens": 150,
     "reasoning_tokens": 5, "cache_read_tokens": 20, "cache_write_tokens": 3, "unpriced_tokens": 0,
     "pricing": "priced", "cost": "0.10000000"},
    {"day": "2026-12-01", "runs": 1, "input_tokens": 60, "output_tokens": 20, "total_tokens": 80,
     "reasoning_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "unpriced_tokens": 40,
     "pricing": "partial", "cost": "0.00000003"},
    zero_day("2026-12-02"),
    {"day": "2026-12-03", "runs": 2, "input_tokens": 27, "output_tokens": 13, "total_tokens": 40,
     "reasoning_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "unpriced_tokens": 30,
     "pricing": "partial", "cost": "0.00000000"},
    zero_day("2026-12-04"),
]
ALICE_BY_MODEL = [
    {"provider": "google", "model": "gemini-2.5-flash", "runs": 2, "calls": 4, "input_tokens": 130,
     "output_tokens": 60, "total_tokens": 190, "reasoning_tokens": 5, "cache_read_tokens": 20,
     "cache_write_tokens": 3, "unpriced_tokens": 0, "pricing": "priced", "cost": "0.10000003"},
    {"provider": "openai-like", "model": "local", "runs": 3, "calls": 3, "input_tokens": 57, "output_tokens": 23,
     "total_tokens": 80, "reasoning_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
     "unpriced_tokens": 70, "pricing": "partial", "cost": "0.00000000"},
]
