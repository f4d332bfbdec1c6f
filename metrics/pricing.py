"""Cost of model calls from the price rule in force: the one place cost is computed.

The rounding rule (one, everywhere): the cost of a ModelCall row is the exact Decimal sum of
tokens x price / 1 000 000 over its token kinds, quantized once to 0.00000001 USD (1e-8) with
ROUND_HALF_EVEN. A RunUsage's cost is the exact sum of its priced ModelCall costs (a sum of
8-decimal numbers needs no further rounding). No floats anywhere.

How token kinds are billed (agno's names; what each provider counts where is recorded per rule):

- `cache_in_input` (Google, OpenAI): the provider's input count already contains the cached
  tokens (Gemini `prompt_token_count` includes `cached_content_token_count`; OpenAI
  `prompt_tokens` includes `prompt_tokens_details.cached_tokens`), so cache reads and writes are
  taken out of input and billed at their own rates: never counted twice. Anthropic reports
  `input_tokens` without cache reads or writes, so there nothing is subtracted.
- `reasoning_in_output` (OpenAI, Anthropic): reasoning tokens are inside the output count.
  Gemini's `candidates_token_count` excludes thinking (agno puts it in reasoning_tokens), and
  Google bills thinking at the output price, so for Google reasoning is added to output.
- A kind whose price the rule leaves empty is billed at the input price (cache read / write)
  or the output price (reasoning): what the provider charges without the discount, so an
  unconfirmed discount can make a cost too high, never too low.

A model with no rule in force is `unpriced`: cost None, never 0.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import connection

from .models import PriceRule, Pricing

QUANTUM = Decimal("0.00000001")
PRICE_QUANTUM = Decimal("0.000001")  # the PriceRule columns hold 6 decimals
MILLION = Decimal(1_000_000)
# agno's provider names differ from the ones people type; rules are kept under one name.
PROVIDER_ALIASES = {"gemini": "google", "google-genai": "google", "vertexai": "google", "claude": "anthropic"}


def normalize_provider(provider: str) -> str:
    name = (provider or "").strip().lower()
    return PROVIDER_ALIASES.get(name, name)


@dataclass(frozen=True)
class PricedCall:
    cost: Decimal | None
    pricing: str
    rule: PriceRule | None
    snapshot: dict[str, Any] | None


def _specificity(rule: PriceRule, model_id: str) -> tuple:
    """Exact ids beat patterns; among patterns the longest literal prefix wins; then the latest start."""
    exact = rule.model_pattern.lower() == model_id.lower()
    literal = len(rule.model_pattern.split("*", 1)[0])
    return (1 if exact else 0, literal, rule.model_pattern, rule.effective_from)


def choose_rule(rules: Iterable[PriceRule], provider: str, model_id: str) -> PriceRule | None:
    """The most specific of `rules` for `provider` / `model_id` (rules already filtered by date)."""
    provider = normalize_provider(provider)
    matching = [r for r in rules if r.provider == provider and r.matches(model_id or "")]
    return max(matching, key=lambda r: _specificity(r, model_id), default=None)


def rules_in_force(at: datetime, providers: Iterable[str] | None = None) -> list[PriceRule]:
    """The rules in force at `at` (PriceRule.objects.in_force), of `providers` if given.

    Every run's final write reads these (a new session's naming call's write too), so with
    `providers` it is one prepared statement run on a plain cursor, its rows made into PriceRules
    by the model's own converters and `Model.from_db`, as the ORM makes them (`_RuleRows`); the
    same rows, values and order as the queryset (tests/metrics/test_pricing.py)."""
    if providers is None:
        return list(PriceRule.objects.in_force(at))
    names = sorted({normalize_provider(p) for p in providers})
    if not names:
        return []
    reader = _rule_rows(connection.vendor)
    when = reader.effective_from.get_db_prep_value(at, connection)
    with connection.cursor() as cursor:
        cursor.execute(_in_force_sql(connection.vendor, len(names)), [when, when, *names])
        rows = cursor.fetchall()
    return [reader.rule(row, connection) for row in rows]


class _RuleRows:
    """PriceRule rows of a `SELECT` of every concrete column in field order, made into model
    instances the way the ORM's compiler does: each column through the backend's and the field's
    converters (`get_db_converters`: Decimals, booleans, aware datetimes, dates), then
    `PriceRule.from_db`.

    Written here rather than taken from `RawQuerySet` because the raw queryset rebuilds its
    compiler, column mapping and converters on every iteration: most of a read's CPU when a run's
    final write reads the rules (docs/PERFORMANCE.md). Built once per database vendor, from the
    connection of the thread that first reads: the converters use nothing of a connection but
    what its settings give every connection of the alias alike (SQLite's time zone), and are
    always called with the reading thread's own."""

    def __init__(self, vendor_connection: Any) -> None:
        meta = PriceRule._meta
        self.effective_from = meta.get_field("effective_from")
        self.converters = []
        for position, field in enumerate(meta.concrete_fields):
            column = field.get_col(meta.db_table)
            functions = vendor_connection.ops.get_db_converters(column) + column.get_db_converters(vendor_connection)
            if functions:
                self.converters.append((position, functions, column))

    def rule(self, row: tuple, db_connection: Any) -> PriceRule:
        values = list(row)
        for position, functions, column in self.converters:
            value = values[position]
            for convert in functions:
                value = convert(value, column, db_connection)
            values[position] = value
        return PriceRule.from_db(db_connection.alias, None, values)


@functools.cache
def _rule_rows(vendor: str) -> _RuleRows:
    return _RuleRows(connection)


@functools.cache
def _in_force_sql(vendor: str, providers: int) -> str:
    """PriceRule.objects.in_force(at).filter(provider__in=...) as SQL (the model's ordering too)."""
    meta, quote = PriceRule._meta, connection.ops.quote_name
    column = {f.name: quote(f.column) for f in meta.concrete_fields}
    order = ", ".join(f"{column[name.lstrip('-')]}{' DESC' if name.startswith('-') else ''}" for name in meta.ordering)
    placeholders = ", ".join(["%s"] * providers)
    return (f"SELECT {', '.join(column.values())} FROM {quote(meta.db_table)} "
            f"WHERE {column['effective_from']} <= %s AND ({column['effective_to']} IS NULL OR "
            f"{column['effective_to']} > %s) AND {column['provider']} IN ({placeholders}) ORDER BY {order}")


def rule_for(provider: str, model_id: str, at: datetime) -> PriceRule | None:
    """The price rule in force for `provider` / `model_id` at the moment `at`, or None."""
    return choose_rule(rules_in_force(at, [provider]), provider, model_id)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def snapshot(rule: PriceRule) -> dict[str, Any]:
    """The prices a row was billed with, stored on the row (strings keep Decimals exact in JSON)."""

    def text(value):
        return None if value is None else str(_dec(value).quantize(PRICE_QUANTUM))

    return {
        "rule_id": rule.pk,
        "provider": rule.provider,
        "model_pattern": rule.model_pattern,
        "currency": rule.currency,
        "per_million": {
            "input": text(rule.input_per_million),
            "output": text(rule.output_per_million),
            "cache_read": text(rule.cache_read_per_million),
            "cache_write": text(rule.cache_write_per_million),
            "reasoning": text(rule.reasoning_per_million),
        },
        "cache_in_input": rule.cache_in_input,
        "reasoning_in_output": rule.reasoning_in_output,
        "effective_from": rule.effective_from.isoformat(),
        "source_url": rule.source_url,
    }


def cost_of(tokens: dict[str, int], rule: PriceRule) -> Decimal:
    """Cost in USD of one agent x model's tokens under `rule`, rounded by the module's rule."""
    get = lambda name: max(0, int(tokens.get(name) or 0))  # noqa: E731
    inp, out = _dec(rule.input_per_million), _dec(rule.output_per_million)
    read_price = inp if rule.cache_read_per_million is None else _dec(rule.cache_read_per_million)
    write_price = inp if rule.cache_write_per_million is None else _dec(rule.cache_write_per_million)
    reasoning_price = out if rule.reasoning_per_million is None else _dec(rule.reasoning_per_million)

    cached, written, reasoning = get("cache_read_tokens"), get("cache_write_tokens"), get("reasoning_tokens")
    fresh_input = get("input_tokens")
    if rule.cache_in_input:
        fresh_input = max(0, fresh_input - cached - written)
    visible_output = get("output_tokens")
    if rule.reasoning_in_output:
        visible_output = max(0, visible_output - reasoning)

    exact = (fresh_input * inp + cached * read_price + written * write_price
             + visible_output * out + reasoning * reasoning_price) / MILLION
    return exact.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def price(provider: str, model_id: str, tokens: dict[str, int], *, at: datetime | None = None,
          rules: Iterable[PriceRule] | None = None) -> PricedCall:
    """Price one agent x model's tokens with the rule in force at `at` (or from `rules`)."""
    if rules is None:
        if at is None:
            raise TypeError("give the moment (at) or the rules in force")
        rules = rules_in_force(at, [provider])
    rule = choose_rule(rules, provider, model_id)
    if rule is None:
        return PricedCall(cost=None, pricing=Pricing.UNPRICED, rule=None, snapshot=None)
    return PricedCall(cost=cost_of(tokens, rule), pricing=Pricing.PRICED, rule=rule, snapshot=snapshot(rule))
