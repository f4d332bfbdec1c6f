"""A run that asks its user, on the chat page: the question as a small form (a field; Confirm /
Cancel for a deep research), answered, and the same answer goes on; the form survives a reload
while the run waits; every step stored (the demo model)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from metrics.models import RunUsage
from tests.conftest import adb

from .conftest import last_turn, log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]


def usage_status(run_id: str) -> str:
    return RunUsage.objects.filter(run_id=run_id).values_list("status", flat=True).first()


async def test_a_question_is_answered_in_a_form_and_the_answer_goes_on(demo_server, new_page, alice):
    """Guards against a paused run shown as a failure, a form that sends nothing (or is lost on a
    reload), answers that start a new run instead of continuing this one, and model text shown as
    markup."""
    page = await new_page()
    await log_in(page, demo_server)
    await send(page, "Please ask me what matters <img src=x onerror=window.pwned=1>")
    turn = last_turn(page)
    await expect(turn).to_have_attribute("data-status", "paused")
    run_id = await turn.get_attribute("data-run-id")
    assert await adb(usage_status, run_id) == "paused"
    field = turn.get_by_label("What should the answer focus on?")
    await expect(field).to_be_focused()
    await expect(turn.locator(".run-error")).to_be_hidden()
    await expect(turn.locator(".meta")).to_contain_text("Waiting for your answer")

    await page.reload()  # the question is stored with the run: it is still asked after a reload
    turn = last_turn(page)
    field = turn.get_by_label("What should the answer focus on?")
    await field.fill("the harbour <img src=x onerror=window.pwned=2>")
    await turn.get_by_role("button", name="Send").click()
    await expect(turn).to_have_attribute("data-status", "completed")
    await expect(turn.locator(".answer")).to_contain_text("the harbour")
    await expect(turn.locator(".question")).to_have_attribute("data-state", "answered")
    assert await turn.get_attribute("data-run-id") == run_id
    assert await page.locator(".msg.assistant").count() == 1  # the same answer went on
    assert await adb(usage_status, run_id) == "completed"
    assert await page.evaluate("window.pwned === undefined")


async def test_a_deep_research_is_confirmed_or_cancelled(demo_server, new_page, alice):
    page = await new_page()
    await log_in(page, demo_server)
    await send(page, "Do a deep research on tidal power")
    turn = last_turn(page)
    await expect(turn.locator(".question-text")).to_contain_text("Start a deep research on")
    await turn.get_by_role("button", name="Confirm").click()
    await expect(turn).to_have_attribute("data-status", "completed")
    await expect(turn.locator(".answer")).to_contain_text("The deep research is done")
    await expect(turn.locator(".delegation")).to_have_count(1)

    await send(page, "Do a deep research on wave power")
    turn = last_turn(page)
    await turn.get_by_role("button", name="Cancel").click()
    await expect(turn).to_have_attribute("data-status", "completed")
    await expect(turn.locator(".answer")).to_contain_text("no deep research")
