"""The chat page shows the user's own spend this month (from GET /usage), as text, and updates it
when an answer ends."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from playwright.async_api import expect

from metrics.models import RunUsage
from tests.conftest import adb

from .conftest import log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]


def _seed(alice, bob) -> None:
    now = datetime.now(UTC)
    for run_id, user, cost, pricing, unpriced in [("a-priced", alice, "1.23456789", "priced", 0),
                                                  ("a-unpriced", alice, None, "unpriced", 1500),
                                                  ("b-priced", bob, "99.00000000", "priced", 0)]:
        RunUsage.objects.create(run_id=run_id, user=user, session_id="s", team_id="cirkelline", status="completed",
                                started_at=now, finished_at=now, cost=None if cost is None else Decimal(cost),
                                pricing=pricing, unpriced_tokens=unpriced, total_tokens=unpriced)


async def test_the_sidebar_shows_this_months_own_spend_and_refreshes_it(demo_server, new_page, alice, bob):
    """Guards against another user's spend shown (bob's $99), the unpriced part hidden or priced,
    and a stale figure after a run."""
    await adb(_seed, alice, bob)
    page = await new_page()
    await log_in(page, demo_server)
    spend = page.locator("#spend")
    await expect(spend).to_have_text("This month: $1.23 + 1,500 tokens not priced")
    assert await spend.evaluate("node => node.children.length") == 0  # text only
    title = await spend.get_attribute("title")
    assert title.startswith("2 runs from ") and title.endswith("exactly $1.23456789 USD")

    await send(page, "What is 2+2?")
    await expect(spend).to_have_attribute("title", re.compile(r"^3 runs from "))
