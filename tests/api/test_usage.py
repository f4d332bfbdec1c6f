"""GET /usage: the caller's own runs, tokens and cost per day and per model; nobody else's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import adb, bearer, error_body
from tests.metrics.helpers import (
    ALICE_BY_DAY,
    ALICE_BY_KIND,
    ALICE_BY_MODEL,
    ALICE_TOTALS,
    seed_naming_call,
    seed_usage,
    zero_day,
)

pytestmark = pytest.mark.django_db(transaction=True)

RANGE = "/usage?from=2026-11-30&to=2026-12-04"


@pytest.fixture
async def seeded(alice, bob):
    await adb(seed_usage, alice, bob)


async def test_a_user_gets_their_own_usage_by_day_and_model(api, alice, seeded):
    response = await api.get(RANGE, headers=bearer(alice))
    assert response.status_code == 200, response.text
    assert response.json() == {"from": "2026-11-30", "to": "2026-12-04", "currency": "USD", "totals": ALICE_TOTALS,
                               "by_kind": ALICE_BY_KIND, "by_day": ALICE_BY_DAY, "by_model": ALICE_BY_MODEL}


async def test_the_calls_that_named_sessions_count_and_are_shown_apart(api, alice, seeded):
    """Guards against a naming call missing from the user's spend, or hidden among the chat runs."""
    await adb(seed_naming_call, alice)
    body = (await api.get(RANGE, headers=bearer(alice))).json()
    naming = {"kind": "naming", "runs": 1, "input_tokens": 30, "output_tokens": 5, "total_tokens": 35,
              "reasoning_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "unpriced_tokens": 0,
              "pricing": "priced", "cost": "0.00000100"}
    assert body["by_kind"] == [*ALICE_BY_KIND, naming]
    assert (body["totals"]["runs"], body["totals"]["total_tokens"], body["totals"]["cost"]) == (5, 305, "0.10000103")
    december_first = next(d for d in body["by_day"] if d["day"] == "2026-12-01")
    assert (december_first["runs"], december_first["cost"]) == (2, "0.00000103")
    gemini = next(m for m in body["by_model"] if m["model"] == "gemini-2.5-flash")
    assert (gemini["runs"], gemini["calls"], gemini["total_tokens"]) == (3, 5, 225)


async def test_another_users_rows_never_appear(api, bob, seeded):
    """Guards against /usage reporting everyone's runs: bob sees his one run and his models only."""
    body = (await api.get(RANGE, headers=bearer(bob))).json()
    assert (body["totals"]["runs"], body["totals"]["total_tokens"], body["totals"]["cost"]) == (1, 10000, "5.00000000")
    assert [(d["day"], d["runs"]) for d in body["by_day"]] == [
        ("2026-11-30", 0), ("2026-12-01", 1), ("2026-12-02", 0), ("2026-12-03", 0), ("2026-12-04", 0)]
    assert [(m["provider"], m["model"], m["calls"], m["cost"]) for m in body["by_model"]] == [
        ("google", "gemini-2.5-flash", 1, "1.00000000"), ("openai", "gpt-4o", 3, "4.00000000")]


@pytest.mark.parametrize("extra", ["&user_id={bob}", "&user={bob}", "&username=bob"])
async def test_a_parameter_naming_another_user_is_refused(api, alice, bob, seeded, extra):
    response = await api.get(RANGE + extra.format(bob=bob.pk), headers=bearer(alice))
    assert response.status_code == 400
    detail = error_body(response)["detail"]
    assert detail.startswith("Unknown query parameter 'user") and "own usage" in detail


async def test_a_body_naming_another_user_is_ignored(api, alice, bob, seeded):
    response = await api.request("GET", RANGE, headers={**bearer(alice), "Content-Type": "application/json"},
                                 content=f'{{"user_id": {bob.pk}, "username": "bob"}}')
    assert response.status_code == 200 and response.json()["totals"] == ALICE_TOTALS


async def test_a_logged_in_browser_gets_its_own_usage_by_session_cookie(api, alice, seeded):
    def cookie():
        client = Client()
        client.force_login(alice)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    api.cookies.set(settings.SESSION_COOKIE_NAME, await adb(cookie))
    response = await api.get(RANGE)
    assert response.status_code == 200 and response.json()["totals"] == ALICE_TOTALS


async def test_without_credentials_it_is_a_401(api, seeded):
    response = await api.get(RANGE)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_body(response) == {"detail": "Authentication credentials were not provided."}


async def test_only_get_is_allowed(api, alice):
    response = await api.post("/usage", headers=bearer(alice))
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


async def test_the_default_is_the_last_30_days_ending_today(api, alice):
    """No parameters: 30 UTC days ending today, each present with zeros; `to` alone ends there."""
    today = datetime.now(UTC).date()
    body = (await api.get("/usage", headers=bearer(alice))).json()
    assert (body["from"], body["to"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert [d["day"] for d in body["by_day"]] == [(today - timedelta(days=29 - i)).isoformat() for i in range(30)]
    assert body["by_day"][0] == zero_day(body["from"]) and body["by_model"] == []
    assert body["totals"] == {k: v for k, v in zero_day("").items() if k != "day"}
    only_to = (await api.get("/usage?to=2026-02-10", headers=bearer(alice))).json()
    assert (only_to["from"], only_to["to"], len(only_to["by_day"])) == ("2026-01-12", "2026-02-10", 30)
    only_from = (await api.get(f"/usage?from={today - timedelta(days=2)}", headers=bearer(alice))).json()
    assert (only_from["to"], len(only_from["by_day"])) == (today.isoformat(), 3)


async def test_a_range_of_366_days_is_allowed(api, alice):
    body = (await api.get("/usage?from=2024-01-01&to=2024-12-31", headers=bearer(alice))).json()
    assert len(body["by_day"]) == 366 and body["by_day"][59]["day"] == "2024-02-29"


@pytest.mark.parametrize(("query", "fragment"), [
    ("from=2026-12-05&to=2026-12-04", "'from' (2026-12-05) must not be after 'to' (2026-12-04)"),
    ("from=2024-01-01&to=2025-01-01", "'from' to 'to' covers 367 days; at most 366"),
    ("from=2026-13-01&to=2026-12-04", "'from' must be a date written YYYY-MM-DD"),
    ("from=20261201", "'from' must be a date written YYYY-MM-DD"),
    ("to=2026-12-4", "'to' must be a date written YYYY-MM-DD"),
    ("to=", "'to' must be a date written YYYY-MM-DD"),
    ("from=2026-11-30T00:00", "'from' must be a date written YYYY-MM-DD"),
    ("to=9999-12-31", "'to' must be between 1970-01-01 and 9999-12-30"),
    ("from=0001-01-01&to=0001-01-02", "'from' must be between"),
    ("from=2026-12-01&from=2026-12-02", "'from' is given more than once"),
    ("form=2026-12-01", "Unknown query parameter 'form'"),
])
async def test_bad_parameters_are_a_400_naming_the_field(api, alice, query, fragment):
    response = await api.get(f"/usage?{query}", headers=bearer(alice))
    assert response.status_code == 400, response.text
    assert fragment in error_body(response)["detail"]


async def test_real_runs_show_up_priced_by_day_and_model_and_then_exhaust_a_budget(api, alice, recorder):
    """End to end: two delegated runs of the scripted model with a price rule; /usage totals equal
    the usage rows (leader and member calls), by_model equals the ledger, and a budget equal to that
    spend refuses the next run."""
    from decimal import Decimal

    from django.utils import timezone

    from metrics.models import Budget, ModelCall, PriceRule, RunUsage

    await adb(PriceRule.objects.create, provider="scripted", model_pattern="scripted",
              input_per_million=Decimal("1250"), output_per_million=Decimal("10000"),  # dollars, not cents
              effective_from=timezone.now() - timedelta(days=1))
    for _ in range(2):
        response = await api.post("/teams/cirkelline/runs", headers=bearer(alice),
                                  data={"message": "Please research the history of Copenhagen", "stream": "false"})
        assert response.status_code == 200, response.text
    rows = await adb(lambda: list(RunUsage.objects.filter(user=alice)))
    calls = await adb(lambda: list(ModelCall.objects.filter(run__user=alice)))
    spent = sum((r.cost for r in rows), Decimal(0))
    assert len(rows) == 2 and spent > 0 and all(r.pricing == "priced" and r.member_runs for r in rows)

    today = datetime.now(UTC).date().isoformat()
    body = (await api.get(f"/usage?from={today}&to={today}", headers=bearer(alice))).json()
    assert body["totals"]["runs"] == 2 and body["totals"]["pricing"] == "priced"
    assert Decimal(body["totals"]["cost"]) == spent
    assert body["totals"]["total_tokens"] == sum(r.total_tokens for r in rows)
    assert body["by_day"] == [{"day": today, **body["totals"]}]
    assert [(m["provider"], m["model"]) for m in body["by_model"]] == sorted({(c.provider, c.model) for c in calls})
    assert sum(Decimal(m["cost"]) for m in body["by_model"]) == spent
    assert sum(m["calls"] for m in body["by_model"]) == sum(c.calls for c in calls) == len(recorder.calls)

    limit = spent.quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    assert limit > 0  # a real limit the spend reached, not a zero budget (which refuses anyway)
    await adb(Budget.objects.create, user=alice, monthly_limit=limit)
    refused = await api.post("/teams/cirkelline/runs", headers=bearer(alice), data={"message": "hi", "stream": "false"})
    assert refused.status_code == 402 and await adb(RunUsage.objects.filter(user=alice).count) == 2
