"""Chats named by the model, as a person sees it: after the first answer the chat list and the title
change to the model's title live, in every window of the user, as text (the offline demo model
names a chat from its first message)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from chat.models import ChatSession, NamedBy
from metrics.models import RunUsage
from tests.conftest import adb
from tests.live import live_server

from .conftest import DEMO, last_turn, log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

SESSION_URL = re.compile(r"/c/([0-9a-f-]{36})$")
# Every name the first chat of the list has shown, in order (run in the page: nothing is missed
# between two polls), and a mark that disappears if the page reloads.
RECORD_NAMES = """() => {
  window.__stayed = true;
  window.__names = [];
  new MutationObserver(() => {
    const link = document.querySelector('#sessions li .session-link');
    const name = link ? link.textContent : null;
    if (name && window.__names[window.__names.length - 1] !== name) window.__names.push(name);
  }).observe(document.getElementById('sessions'), {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def naming_server(django_db_setup, django_db_blocker) -> Iterator[str]:
    with django_db_blocker.unblock(), live_server({**DEMO, "CIRKELLINE_AUTO_NAME_SESSIONS": "true"}) as url:
        yield url


async def test_the_chat_list_shows_the_models_title_live_in_every_window(naming_server, new_page, alice):
    """Guards against a title that needs a reload to show, one that reaches only the window that
    asked, and a name that replaced the user's own."""
    page, other = await new_page(), await new_page()
    await log_in(page, naming_server)
    await log_in(other, naming_server)
    await page.evaluate(RECORD_NAMES)
    await other.evaluate(RECORD_NAMES)

    await send(page, "Please research the history of Copenhagen in detail")
    await expect(last_turn(page)).to_have_attribute("data-status", "completed")
    title = "Research the history of Copenhagen"
    await expect(page.locator("#sessions li .session-link").first).to_have_text(title)
    await expect(page.locator("#title")).to_have_text(title)
    await expect(other.locator("#sessions li .session-link").first).to_have_text(title)
    names = await page.evaluate("window.__names")
    assert names[0] == "Please research the history of Copenhagen in detail" and names[-1] == title, names
    assert await page.evaluate("window.__stayed") and await other.evaluate("window.__stayed")  # no reload

    session_id = SESSION_URL.search(page.url).group(1)
    row = await adb(ChatSession.objects.get, session_id=session_id)
    assert (row.session_name, row.named_by) == (title, NamedBy.MODEL)
    kinds = await adb(lambda: sorted(RunUsage.objects.filter(session_id=session_id).values_list("kind", flat=True)))
    assert kinds == ["chat", "naming"]

    # renamed in one window: the other shows it too, and a second answer names nothing again
    await page.locator("#sessions li").first.hover()
    await page.locator("#sessions li").first.locator(".rename").click()
    await page.fill(".rename-input", "Copenhagen trip")
    await page.press(".rename-input", "Enter")
    await expect(other.locator("#sessions li .session-link").first).to_have_text("Copenhagen trip")
    await send(page, "And what about Aarhus?")
    await expect(last_turn(page)).to_have_attribute("data-status", "completed")
    await expect(page.locator("#title")).to_have_text("Copenhagen trip")
    assert await adb(lambda: RunUsage.objects.filter(session_id=session_id, kind="naming").count()) == 1


async def test_a_title_is_shown_as_text_never_as_markup(naming_server, new_page, alice):
    page = await new_page()
    await log_in(page, naming_server)
    await send(page, "Please explain <img src=x onerror=window.pwned=1> tags")
    await expect(last_turn(page)).to_have_attribute("data-status", "completed")
    await expect(page.locator("#sessions li .session-link").first).to_have_text(
        "Explain <img src=x onerror=window.pwned=1> tags")
    await expect(page.locator("#title")).to_have_text("Explain <img src=x onerror=window.pwned=1> tags")
    assert await page.locator("#sessions img, #title img").count() == 0
    assert await page.evaluate("window.pwned === undefined")
