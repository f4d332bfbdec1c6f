"""Seed PriceRule with public list prices (USD per million tokens), each with its source.

Read on 2026-12-01 from stored copies of public pages (no live web): see docs/COST.md for
what was confirmed where and what was left out. A model whose figures could not be confirmed
is not seeded (its runs are 'unpriced' until staff add a rule); a discount that could not be
confirmed (cached input) is left empty, which bills those tokens at the full input price.
"""

from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import migrations

READ = date(2026, 12, 1)
FROM = datetime(2026, 12, 1, tzinfo=UTC)

GOOGLE = "https://ai.google.dev/gemini-api/docs/pricing"
OPENAI = "https://platform.openai.com/docs/pricing"
ANTHROPIC = "https://platform.claude.com/docs/en/docs/about-claude/pricing"

GOOGLE_NOTE = ("Standard tier, text/image/video input. Output price includes thinking tokens. Cached-input price "
               "not confirmed from a stored copy (sources disagree): cached tokens are billed at the input price.")
GEMINI_PRO_NOTE = (GOOGLE_NOTE + " Prompts over 200k tokens cost $2.50 in / $15.00 out and are NOT applied: the "
                   "ledger sums calls, it does not keep each request's prompt size.")
OPENAI_NOTE = ("Standard tier. The official page was not in the stored copies; figures confirmed by several "
               "stored pages quoting it (deploybase.ai/articles/openai-pricing, aumiqx.com OpenAI pricing guide, "
               "tokenmath.io). Cached-input price not confirmed: cached tokens are billed at the input price.")
ANTHROPIC_NOTE = ("Cache write = the 5-minute write price (agno does not report the TTL; 1-hour writes cost "
                  "2x input and are under-billed here). Long-context (>200k) prices are not applied.")

# provider, pattern, input, output, cache read, cache write, cache_in_input, reasoning_in_output, url, note
RULES = [
    ("google", "gemini-2.5-pro", "1.25", "10.00", None, None, True, False, GOOGLE, GEMINI_PRO_NOTE),
    ("google", "gemini-2.5-flash", "0.30", "2.50", None, None, True, False, GOOGLE, GOOGLE_NOTE),
    ("google", "gemini-2.5-flash-lite", "0.10", "0.40", None, None, True, False, GOOGLE, GOOGLE_NOTE),
    ("openai", "gpt-4.1", "2.00", "8.00", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "gpt-4.1-2025-04-14", "2.00", "8.00", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "gpt-4.1-mini", "0.40", "1.60", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "gpt-4.1-mini-2025-04-14", "0.40", "1.60", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "gpt-4.1-nano", "0.10", "0.40", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "gpt-4.1-nano-2025-04-14", "0.10", "0.40", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "gpt-4o", "2.50", "10.00", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "gpt-4o-mini", "0.15", "0.60", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "gpt-4o-mini-2024-07-18", "0.15", "0.60", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "o3", "2.00", "8.00", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("openai", "o4-mini", "1.10", "4.40", None, None, True, True, OPENAI, OPENAI_NOTE),
    ("anthropic", "claude-opus-4-6*", "5", "25", "0.50", "6.25", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-opus-4-5*", "5", "25", "0.50", "6.25", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-opus-4-1*", "15", "75", "1.50", "18.75", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-opus-4-0", "15", "75", "1.50", "18.75", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-opus-4-20250514", "15", "75", "1.50", "18.75", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-sonnet-4-6*", "3", "15", "0.30", "3.75", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-sonnet-4-5*", "3", "15", "0.30", "3.75", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-sonnet-4-0", "3", "15", "0.30", "3.75", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-sonnet-4-20250514", "3", "15", "0.30", "3.75", False, True, ANTHROPIC, ANTHROPIC_NOTE),
    ("anthropic", "claude-haiku-4-5*", "1", "5", "0.10", "1.25", False, True, ANTHROPIC, ANTHROPIC_NOTE),
]


def _decimal(value):
    return None if value is None else Decimal(value)


def seed(apps, schema_editor):
    PriceRule = apps.get_model("metrics", "PriceRule")
    for provider, pattern, inp, out, read, write, cache_in_input, reasoning_in_output, url, note in RULES:
        if PriceRule.objects.filter(provider=provider, model_pattern=pattern).exists():
            continue  # staff already priced it
        PriceRule.objects.create(
            provider=provider, model_pattern=pattern, input_per_million=Decimal(inp),
            output_per_million=Decimal(out), cache_read_per_million=_decimal(read),
            cache_write_per_million=_decimal(write), cache_in_input=cache_in_input,
            reasoning_in_output=reasoning_in_output, currency="USD", effective_from=FROM,
            source_url=url, source_read=READ, note=note,
        )


def unseed(apps, schema_editor):
    PriceRule = apps.get_model("metrics", "PriceRule")
    for provider, pattern, *_ in RULES:
        PriceRule.objects.filter(provider=provider, model_pattern=pattern, effective_from=FROM).delete()


class Migration(migrations.Migration):

    dependencies = [("metrics", "0002_cost_ledger_prices_budgets_failures")]

    operations = [migrations.RunPython(seed, unseed)]
