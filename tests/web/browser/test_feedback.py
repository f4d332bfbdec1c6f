"""Feedback on the chat page: thumbs up or down under a finished answer, an optional comment, the
state shown after a reload, changed and taken back; every step stored (the demo model)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from metrics.models import Feedback
from tests.conftest import adb

from .conftest import last_turn, log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

COMMENT = "Right, but say why <img src=x onerror=window.pwned=1>"


def stored(run_id: str) -> tuple[str, str] | None:
    row = Feedback.objects.filter(run_id=run_id).values_list("rating", "comment").first()
    return tuple(row) if row else None


async def test_an_answer_is_rated_commented_reloaded_changed_and_taken_back(demo_server, new_page, alice):
    """Guards against thumbs that change the page but not the stored feedback, a state lost on reload,
    and a comment shown as markup."""
    page = await new_page()
    await log_in(page, demo_server)
    await send(page, "What is 2+2?")
    turn = last_turn(page)
    await expect(turn).to_have_attribute("data-status", "completed")
    run_id = await turn.get_attribute("data-run-id")
    up, down = turn.get_by_role("button", name="Good answer"), turn.get_by_role("button", name="Bad answer")
    await expect(up).to_have_attribute("aria-pressed", "false")
    await expect(down).to_have_attribute("aria-pressed", "false")

    await up.click()
    await expect(up).to_have_attribute("aria-pressed", "true")
    comment = turn.get_by_role("textbox", name="Comment on this answer")
    await expect(comment).to_be_focused()  # the optional comment is offered at once
    assert await adb(stored, run_id) == ("up", "")
    await comment.fill(COMMENT)
    await turn.get_by_role("button", name="Send").click()
    await expect(turn.locator(".feedback-text")).to_have_text(f"Your comment: {COMMENT}")
    await expect(comment).to_be_hidden()
    assert await adb(stored, run_id) == ("up", COMMENT)
    assert await turn.locator(".feedback img").count() == 0 and await page.evaluate("window.pwned === undefined")

    await page.reload()
    turn = last_turn(page)
    up, down = turn.get_by_role("button", name="Good answer"), turn.get_by_role("button", name="Bad answer")
    await expect(up).to_have_attribute("aria-pressed", "true")
    await expect(turn.locator(".feedback-text")).to_have_text(f"Your comment: {COMMENT}")

    await down.click()  # changed: the comment stays
    await expect(down).to_have_attribute("aria-pressed", "true")
    await expect(up).to_have_attribute("aria-pressed", "false")
    assert await adb(stored, run_id) == ("down", COMMENT)

    await down.click()  # the same thumb again takes it back
    await expect(down).to_have_attribute("aria-pressed", "false")
    await expect(turn.locator(".feedback-note")).to_have_text("Feedback removed.")
    await expect(turn.locator(".feedback-text")).to_be_hidden()
    assert await adb(stored, run_id) is None
    await page.reload()
    await expect(last_turn(page).get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "false")
    await expect(last_turn(page).get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "false")
