"""The chat page's memories: a memory tool call shown in the conversation (live and from history),
and "What Cirkelline remembers": the user's own memories listed as text, searched, deleted one by
one or all at once after a confirmation, added by hand."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from chat.personal.models import Profile, UserMemory
from tests.conftest import adb

from .conftest import last_turn, log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

HOSTILE = 'Likes <img src=x onerror="window.__pwned=1"> tags.'


def texts_of(user) -> list[str]:
    return sorted(UserMemory.objects.filter(user=user).values_list("memory", flat=True))


async def test_alice_asks_cirkelline_to_remember_and_sees_it_happen(demo_server, new_page, alice):
    await adb(Profile.objects.change, alice.pk, {"memories_enabled": True})
    page = await new_page()
    await log_in(page, demo_server)
    await send(page, "Remember that my sister is called Ida")
    turn = last_turn(page)
    await expect(turn.locator(".answer")).to_contain_text("I will remember that: My sister is called Ida.")
    use = turn.locator(".memory-use")
    await expect(use).to_have_text("Updating memory: Remember this about the user: my sister is called Ida")
    await expect(use).to_have_attribute("data-state", "done")
    assert await adb(texts_of, alice) == ["My sister is called Ida."]

    await page.click("#open-memories")
    item = page.locator("#memory-list .memory")
    await expect(item).to_have_count(1)
    await expect(item.locator(".memory-text")).to_have_text("My sister is called Ida.")
    await expect(item.locator(".memory-topics")).to_have_text("family")
    await page.click("#memories-close")

    await page.reload()  # the stored run shows its memory tool call too
    await expect(last_turn(page).locator(".memory-use")).to_have_attribute("data-state", "done")
    await expect(last_turn(page).locator(".memory-use .route")).to_have_text("Updating memory")


async def test_the_panel_lists_searches_and_deletes_only_alices_memories(demo_server, new_page, alice, bob):
    """Guards against another user's memories shown, the user's text rendered as markup, a delete
    all without a confirmation, or a delete reaching bob."""
    for text in ("Drinks black coffee.", "Has a sister called Ida.", HOSTILE):
        await adb(UserMemory.objects.save_for, alice.pk, memory=text, topics=["notes"])
    await adb(UserMemory.objects.save_for, bob.pk, memory="Bob's secret.")
    page = await new_page()
    await log_in(page, demo_server)
    await page.click("#open-memories")
    await expect(page.locator("#memories-state")).to_contain_text("Memory is off")
    items = page.locator("#memory-list .memory-text")
    await expect(items).to_have_count(3)
    await expect(items.first).to_have_text(HOSTILE)  # newest first, as text
    assert await page.locator("#memory-list img").count() == 0 and await page.evaluate("window.__pwned") is None
    await expect(page.locator("#memory-list")).not_to_contain_text("Bob's secret.")

    await page.fill("#memory-search", "COFFEE")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_text("Drinks black coffee.")
    await page.click("#memory-list .memory button.delete")
    await expect(items).to_have_count(0)
    await expect(page.locator("#memory-empty")).to_be_visible()
    await expect(page.locator("#memory-empty")).to_have_text("No memory matches.")
    assert await adb(texts_of, alice) == sorted([HOSTILE, "Has a sister called Ida."])

    await page.fill("#memory-search", "")
    await expect(items).to_have_count(2)
    async def dismiss(dialog):
        await dialog.dismiss()

    page.once("dialog", dismiss)  # changed her mind: nothing deleted
    await page.click("#memory-clear")
    await expect(items).to_have_count(2)
    assert len(await adb(texts_of, alice)) == 2

    messages = []

    async def accept(dialog):
        messages.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await page.click("#memory-clear")
    await expect(items).to_have_count(0)
    await expect(page.locator("#memory-empty")).to_be_visible()
    await expect(page.locator("#memory-empty")).to_have_text("Nothing remembered yet.")
    assert messages and re.search(r"cannot be undone", messages[0])
    assert await adb(texts_of, alice) == [] and await adb(texts_of, bob) == ["Bob's secret."]

    await page.fill("#memory-new", "I am vegetarian.")
    await page.click("#memory-add-form button[type=submit]")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_text("I am vegetarian.")
    assert await adb(texts_of, alice) == ["I am vegetarian."]
