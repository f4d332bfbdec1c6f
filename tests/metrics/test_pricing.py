"""Cost from the price rule in force: per-provider token arithmetic, one rounding rule, versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from metrics.models import PriceRule
from metrics.pricing import cost_of, normalize_provider, price, rule_for, rules_in_force, snapshot

from .helpers import T0, rule

pytestmark = pytest.mark.django_db


def test_openai_style_cached_tokens_are_taken_out_of_input_and_reasoning_is_not_billed_twice():
    """Guards against double-counting: OpenAI counts cached tokens inside prompt_tokens and
    reasoning inside completion_tokens. Red when cached tokens are also billed at the full rate."""
    r = rule("openai", "gpt-x", "2.00", "8.00", read="0.50")
    tokens = {"input_tokens": 10_000, "cache_read_tokens": 4_000, "output_tokens": 1_000, "reasoning_tokens": 600}
    # 6000 x 2 + 4000 x 0.5 + 1000 x 8 (reasoning is inside output) = 22 000 per million
    assert cost_of(tokens, r) == Decimal("0.02200000")


def test_gemini_style_thinking_tokens_are_added_to_output_at_the_output_price():
    """Guards against under-billing Gemini: candidates_token_count excludes thinking, billed as output."""
    r = rule("google", "gemini-x", "0.30", "2.50", cache_in_input=True, reasoning_in_output=False)
    tokens = {"input_tokens": 1_000, "output_tokens": 200, "reasoning_tokens": 800}
    assert cost_of(tokens, r) == Decimal("0.00280000")  # (1000 x 0.30 + 1000 x 2.50) / 1e6


def test_anthropic_style_cache_reads_and_writes_are_separate_from_input():
    """Anthropic's input_tokens exclude cache reads and writes: nothing is subtracted."""
    r = rule("anthropic", "claude-x", "3", "15", read="0.30", write="3.75", cache_in_input=False)
    tokens = {"input_tokens": 100, "cache_read_tokens": 10_000, "cache_write_tokens": 2_000, "output_tokens": 50}
    # 100 x 3 + 10000 x 0.30 + 2000 x 3.75 + 50 x 15 = 11 550
    assert cost_of(tokens, r) == Decimal("0.01155000")


def test_an_unconfirmed_cache_discount_bills_cached_tokens_at_the_input_price():
    r = rule("google", "gemini-x", "1.25", "10")
    assert cost_of({"input_tokens": 1000, "cache_read_tokens": 400}, r) == Decimal("0.00125000")


def test_costs_are_rounded_once_to_1e_8_half_even():
    r = rule("x", "m", "0.000001", "0")  # 1 token = 1e-12 USD
    assert cost_of({"input_tokens": 5_000}, r) == Decimal("0E-8")  # 0.000000005 -> even 0
    assert cost_of({"input_tokens": 15_000}, r) == Decimal("0.00000002")  # 0.000000015 -> even 2
    assert cost_of({"input_tokens": 25_000}, r) == Decimal("0.00000002")  # 0.000000025 -> even 2


def test_the_most_specific_rule_in_force_at_the_moment_wins():
    broad = rule("anthropic", "claude-test-4*", "9", "9")
    narrow = rule("anthropic", "claude-test-4-5*", "3", "15")
    exact = rule("anthropic", "claude-test-4-5-x", "1", "1")
    assert rule_for("Anthropic", "claude-test-4-5-20250929", T0) == narrow
    assert rule_for("anthropic", "claude-test-4-5-x", T0) == exact
    assert rule_for("anthropic", "claude-test-4-1", T0) == broad
    assert rule_for("anthropic", "claude-test-3", T0) is None
    assert rule_for("anthropic", "claude-test-4-5", datetime(2025, 1, 1, tzinfo=UTC)) is None, "not yet in force"


def test_an_unknown_model_is_unpriced_never_zero():
    rule("openai", "gpt-x")
    priced = price("OpenAI", "gpt-unknown", {"input_tokens": 10}, at=T0)
    assert (priced.cost, priced.pricing, priced.snapshot) == (None, "unpriced", None)


def test_gemini_alias_provider_names_find_google_rules():
    r = rule("google", "gemini-test", "0.30", "2.50")
    assert rule_for("Gemini", "gemini-test", T0) == r


def test_overlapping_rules_for_one_model_are_refused():
    """Guards against two prices in force at once for one model (which one billed the run?)."""
    rule("openai", "gpt-x", start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 6, 1, tzinfo=UTC))
    clash = PriceRule(provider="openai", model_pattern="gpt-x", input_per_million=1, output_per_million=1,
                      effective_from=datetime(2026, 5, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="in force over part of this period"):
        clash.full_clean()
    later = PriceRule(provider="openai", model_pattern="gpt-x", input_per_million=1, output_per_million=1,
                      effective_from=datetime(2026, 6, 1, tzinfo=UTC))
    later.full_clean()  # starts when the other ends: no overlap


def test_changing_a_price_closes_the_old_rule_and_opens_a_new_one():
    old = rule("openai", "gpt-x", "2.00", "8.00", start=T0 - timedelta(days=30))
    new = old.replace(at=T0, input_per_million=Decimal("1.00"))
    old.refresh_from_db()
    assert old.effective_to == T0 and old.input_per_million == Decimal("2.00")
    assert (new.effective_from, new.effective_to, new.input_per_million, new.output_per_million) == (
        T0, None, Decimal("1.00"), Decimal("8.00"))
    assert rule_for("openai", "gpt-x", T0 - timedelta(seconds=1)) == old
    assert rule_for("openai", "gpt-x", T0) == new
    with pytest.raises(ValidationError):
        old.replace(at=T0 + timedelta(days=1), input_per_million=Decimal("5"))  # closed: change its successor


def test_the_snapshot_keeps_prices_as_exact_strings():
    r = rule("anthropic", "claude-x", "3", "15", read="0.30")
    snap = snapshot(r)
    assert snap["per_million"] == {"input": "3.000000", "output": "15.000000", "cache_read": "0.300000",
                                   "cache_write": None, "reasoning": None}
    assert snap["rule_id"] == r.pk and snap["cache_in_input"] is True


def test_the_seeded_prices_have_sources_and_cover_the_models_users_configure():
    seeded = {(r.provider, r.model_pattern): r for r in PriceRule.objects.exclude(source_url="")}
    for key in [("google", "gemini-2.5-flash"), ("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash-lite"),
                ("openai", "gpt-4.1-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5*")]:
        assert key in seeded, key
    assert all(r.source_url.startswith("https://") and r.source_read for r in seeded.values())
    flash = seeded[("google", "gemini-2.5-flash")]
    assert (flash.input_per_million, flash.output_per_million, flash.reasoning_in_output) == (
        Decimal("0.300000"), Decimal("2.500000"), False)
    assert rule_for("Anthropic", "claude-haiku-4-5-20251001", datetime(2026, 12, 2, tzinfo=UTC)).output_per_million \
        == Decimal("5")


def _fields(rule: PriceRule) -> list:
    """Every column's value and type as the model instance holds it, and its database state."""
    values = [(f.attname, getattr(rule, f.attname)) for f in PriceRule._meta.concrete_fields]
    return [(name, value, type(value)) for name, value in values] + [rule._state.adding, rule._state.db]


def test_rules_in_force_reads_what_the_queryset_reads_at_the_edges_of_a_period():
    """The final write's prepared read of the rules in force is the ORM query's rows, in its order,
    with the model's field values (a period's start is in it, its end is not)."""
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=1)
    rule("openai", "gpt-t", "1.5", "2", start=start, end=end)
    rule("openai", "gpt-t", "3", "4", start=end)
    rule("openai", "gpt-a*", "1", "1", read="0.25")
    rule("google", "gemini-t", "0.3", "2.5", start=start)
    rule("anthropic", "claude-t", "3", "15")
    tick = timedelta(microseconds=1)
    for at in (start - tick, start, T0, end - tick, end, end + timedelta(days=9)):
        for providers in (["OpenAI"], ["gemini", "openai"], ["anthropic", "nobody"], ["nobody"]):
            names = {normalize_provider(p) for p in providers}
            expected = list(PriceRule.objects.in_force(at).filter(provider__in=names))
            got = rules_in_force(at, providers)
            assert [r.pk for r in got] == [r.pk for r in expected], (at, providers)
            assert [snapshot(r) for r in got] == [snapshot(r) for r in expected]
            assert [_fields(r) for r in got] == [_fields(r) for r in expected], (at, providers)
    assert rules_in_force(T0, []) == []
    ours = {"gpt-t", "gpt-a*"}  # beside the seeded prices
    assert {r.model_pattern for r in rules_in_force(end, ["openai"])} & ours == ours
    assert [r.input_per_million for r in rules_in_force(end, ["openai"]) if r.model_pattern == "gpt-t"] == [Decimal(3)]
