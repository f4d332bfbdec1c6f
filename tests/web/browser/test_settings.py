"""The chat page's settings dialog: the user's profile (name, timezone, custom instructions, the
memory switch), loaded and saved through GET/PATCH /profile, shown as text, never as markup."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from chat.personal.models import Profile
from tests.conftest import adb

from .conftest import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

HOSTILE = 'Answer briefly. <img src=x onerror="window.__pwned=1"><b>bold</b>'


async def test_alice_sets_her_profile_and_finds_it_again_after_a_reload(demo_server, new_page, alice, bob):
    """Guards against the dialog not saving a field, saving another user's profile, or rendering the
    user's text as markup."""
    page = await new_page()
    await log_in(page, demo_server)
    await page.click("#open-settings")
    dialog = page.locator("#settings")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#profile-memories")).not_to_be_checked()  # off for new users
    await expect(page.locator("#profile-name")).to_have_attribute("placeholder", "alice")

    await page.fill("#profile-name", "Alice")
    await page.select_option("#profile-timezone", "Asia/Tokyo")
    await page.fill("#profile-instructions", HOSTILE)
    await expect(page.locator("#profile-count")).to_have_text(f"{len(HOSTILE)} / 2000 characters")
    await page.check("#profile-memories")
    await page.click("#settings-save")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#status-live")).to_have_text("Settings saved.")

    row = await adb(Profile.objects.get, user=alice)
    assert (row.display_name, row.timezone, row.custom_instructions, row.memories_enabled) == (
        "Alice", "Asia/Tokyo", HOSTILE, True)
    assert not await adb(Profile.objects.filter(user=bob).exists)

    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    await page.click("#open-settings")
    await expect(page.locator("#profile-name")).to_have_value("Alice")
    await expect(page.locator("#profile-timezone")).to_have_value("Asia/Tokyo")
    await expect(page.locator("#profile-instructions")).to_have_value(HOSTILE)
    await expect(page.locator("#profile-memories")).to_be_checked()
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("#settings img, #settings b").count() == 0

    await page.fill("#profile-instructions", "x" * 2000)  # the limit: the textarea stops there
    await page.press("#profile-instructions", "y")
    await expect(page.locator("#profile-count")).to_have_text("2000 / 2000 characters")
    await page.click("#settings-cancel")
    await expect(dialog).to_be_hidden()
    assert (await adb(Profile.objects.get, user=alice)).custom_instructions == HOSTILE  # cancelled: unchanged


async def test_a_refused_change_is_explained_and_the_dialog_stays_open(demo_server, new_page, alice):
    page = await new_page()
    await log_in(page, demo_server)
    await page.click("#open-settings")
    await expect(page.locator("#settings")).to_be_visible()  # shown once the profile is loaded into it
    # a timezone the server does not know (a stale page): the server's sentence is shown
    await page.evaluate("""() => {
        const option = new Option('Atlantis', 'Atlantis/Capital');
        document.getElementById('profile-timezone').append(option);
        document.getElementById('profile-timezone').value = 'Atlantis/Capital';
    }""")
    await page.click("#settings-save")
    notice = page.locator("#settings-notice")
    await expect(notice).to_contain_text("IANA timezone")
    await expect(page.locator("#settings")).to_be_visible()
    assert not await adb(Profile.objects.exists)
