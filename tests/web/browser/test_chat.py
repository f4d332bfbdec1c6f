"""The chat page as a person uses it: log in, watch an answer stream in, stop a run, reload,
rename and delete chats, lose the connection, use a phone-sized screen."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone
from playwright.async_api import expect

from chat.models import ChatRun, ChatSession
from metrics.models import PriceRule, RunUsage
from tests.conftest import adb, bearer

from .conftest import last_turn, log_in, save_screenshot, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

RESEARCH = "Please research the history of Copenhagen"
SESSION_URL = re.compile(r"/c/([0-9a-f-]{36})$")

# Records, on every change of the conversation, the text of the newest answer and whether a
# delegation was shown as in progress (run in the page, so nothing between two polls is missed).
RECORD_STATES = """() => {
  window.__states = [];
  window.__delegationWorking = null;
  new MutationObserver(() => {
    const answers = document.querySelectorAll('.msg.assistant .answer');
    const text = answers.length ? answers[answers.length - 1].textContent : '';
    if (text && window.__states[window.__states.length - 1] !== text) window.__states.push(text);
    const working = document.querySelector('.delegation[data-state="working"] .route');
    if (working && !window.__delegationWorking) window.__delegationWorking = working.textContent;
  }).observe(document.getElementById('messages'),
             {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def session_id_of(page) -> str:
    match = SESSION_URL.search(page.url)
    assert match, page.url
    return match.group(1)


async def test_an_answer_streams_in_with_its_delegation_tokens_and_duration(demo_server, new_page, alice):
    """Guards against answers appearing only at the end (no streaming), invisible delegation,
    and a footer whose tokens or cost disagree with the usage row."""
    await adb(PriceRule.objects.create, provider="cirkelline demo", model_pattern="cirkelline-demo",
              input_per_million=Decimal("1.25"), output_per_million=Decimal("10"),
              effective_from=timezone.now() - timedelta(days=1))
    page = await new_page()
    await log_in(page, demo_server)
    await page.evaluate(RECORD_STATES)
    await send(page, RESEARCH)
    turn = last_turn(page)
    await expect(turn).to_have_attribute("data-status", "completed")

    final = await turn.locator(".answer").text_content()
    states = await page.evaluate("window.__states")
    partial = [s for s in states if s != final]
    assert len(partial) >= 2, states
    assert all(final.startswith(s.rstrip()) and len(s) < len(final) for s in partial)
    assert await page.evaluate("window.__delegationWorking") == "Cirkelline → Research Specialist"
    route = turn.locator(".delegation")
    await expect(route.locator(".task")).to_have_text(f": {RESEARCH}")
    await expect(route).to_have_attribute("data-state", "done")
    await route.locator("summary").click()  # member output is collapsible
    await expect(route.locator(".member-output")).to_contain_text("[Research Specialist]")

    session_id = session_id_of(page)
    row = await adb(RunUsage.objects.get, session_id=session_id)
    meta = await turn.locator(".meta").text_content()
    tokens = int(re.search(r"([\d,]+) tokens", meta).group(1).replace(",", ""))
    assert row.status == "completed" and tokens == row.total_tokens > 0
    cost = re.search(r"\$([\d.]+)", meta).group(1)
    assert row.cost > 0 and Decimal(cost) == row.cost and not cost.endswith("0")
    assert re.search(r"\d+\.\d s$", meta)
    assert await adb(lambda: ChatSession.objects.get(session_id=session_id).user_id) == alice.pk
    await expect(page.locator("#sessions li")).to_have_count(1)

    await send(page, "What is 12 * 34?")
    await expect(page.locator(".msg.assistant").nth(1)).to_have_attribute("data-status", "completed")
    await expect(page.locator(".msg.assistant").nth(1).locator(".answer")).to_have_text("408")
    await save_screenshot(page)


async def test_stop_ends_a_slow_run_and_it_is_recorded_as_cancelled(slow_server, new_page, alice):
    """Guards against a Stop button that hides the answer while the run goes on (and is billed
    as completed)."""
    page = await new_page()
    await log_in(page, slow_server)
    await send(page, RESEARCH)
    turn = last_turn(page)
    await expect(turn).to_have_attribute("data-status", "running")
    await page.click("#stop")
    await expect(turn).to_have_attribute("data-status", "cancelled")
    await expect(turn.locator(".meta")).to_contain_text("Stopped")
    await expect(page.locator("#send")).to_be_visible()
    run_id = await turn.get_attribute("data-run-id")
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "cancelled"
    # The call Stop cut off is billed for what it consumed, counted locally (docs/COST.md).
    calls = await adb(lambda: list(row.calls.all()))
    assert row.model_calls == sum(c.calls for c in calls)
    assert all(c.estimated and c.input_tokens > 0 for c in calls), calls
    assert await turn.locator(".answer").text_content() == ""


async def test_a_member_that_stops_answering_is_shown_as_such_until_it_answers(slow_server, new_page, alice):
    """Guards against a delegation freeze the user cannot see: the page shows the specialist as
    not answering when the server reports member_stalled, and as done once it answers."""
    page = await new_page()
    await log_in(page, slow_server)
    await page.evaluate("""() => {
      window.__delegationStates = [];
      new MutationObserver(() => {
        const d = document.querySelector('.delegation');
        const last = window.__delegationStates[window.__delegationStates.length - 1];
        if (d && d.dataset.state !== last) window.__delegationStates.push(d.dataset.state);
      }).observe(document.getElementById('messages'), {subtree: true, attributes: true, childList: true});
    }""")
    await send(page, RESEARCH)
    route = last_turn(page).locator(".delegation")
    # Three 2 s provider calls: generous waits, so a loaded machine cannot make them race.
    await expect(route).to_have_attribute("data-state", "stalled", timeout=20_000)
    await expect(route.locator(".state")).to_have_text("not answering…")
    await expect(last_turn(page)).to_have_attribute("data-status", "completed", timeout=20_000)
    await expect(route).to_have_attribute("data-state", "done")
    assert await page.evaluate("window.__delegationStates") == ["working", "stalled", "done"]


async def test_reload_and_back_forward_show_the_stored_history(demo_server, new_page, alice):
    """Guards against a chat that only lives in the page (lost on reload) and a URL that does
    not lead back to its chat."""
    page = await new_page()
    await log_in(page, demo_server)
    await send(page, RESEARCH)
    await expect(last_turn(page)).to_have_attribute("data-status", "completed")
    answer = await last_turn(page).locator(".answer").text_content()
    session_url = page.url

    await page.reload()
    await expect(page.locator(".msg.user .bubble")).to_have_text([RESEARCH])
    await expect(last_turn(page).locator(".answer")).to_have_text(answer)
    await expect(last_turn(page).locator(".delegation .route")).to_have_text("Cirkelline → Research Specialist")
    await expect(last_turn(page).locator(".meta")).to_contain_text("tokens")
    await expect(page.locator("#title")).to_have_text(RESEARCH)

    await page.click("#new-chat")
    await expect(page).to_have_url(demo_server + "/")
    await expect(page.locator("#welcome")).to_be_visible()
    await page.go_back()
    await expect(page).to_have_url(session_url)
    await expect(last_turn(page).locator(".answer")).to_have_text(answer)
    await page.go_forward()
    await expect(page.locator(".msg")).to_have_count(0)


async def test_chats_are_listed_newest_first_and_can_be_renamed_and_deleted(demo_server, new_page, alice):
    """Guards against rename/delete that change the page but not the stored chat."""
    page = await new_page()
    await log_in(page, demo_server)
    for question in ("What is 1+1?", "What is 2+2?"):
        await page.click("#new-chat")
        await send(page, question)
        await expect(last_turn(page)).to_have_attribute("data-status", "completed")
    items = page.locator("#sessions li .session-link")
    await expect(items).to_have_text(["What is 2+2?", "What is 1+1?"])
    newest = session_id_of(page)

    await page.locator("#sessions li").first.hover()
    await page.locator("#sessions li").first.locator(".rename").click()
    await page.fill(".rename-input", "Arithmetic")
    await page.press(".rename-input", "Enter")
    await expect(items.first).to_have_text("Arithmetic")
    await expect(page.locator("#title")).to_have_text("Arithmetic")
    assert await adb(lambda: ChatSession.objects.get(session_id=newest).session_name) == "Arithmetic"

    async def confirm(dialog):
        assert dialog.type == "confirm" and "Arithmetic" in dialog.message
        await dialog.accept()

    page.once("dialog", confirm)
    await page.locator("#sessions li").first.hover()
    await page.locator("#sessions li").first.locator(".delete").click()
    await expect(items).to_have_text(["What is 1+1?"])
    await expect(page).to_have_url(demo_server + "/")
    assert not await adb(ChatSession.objects.filter(session_id=newest).exists)
    assert await adb(ChatRun.objects.filter(session__session_id=newest).count) == 0


# Keeps every WebSocket the page opens reachable, so a test can drop the connection.
TRACK_SOCKETS = """
  window.__sockets = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
"""


async def test_a_dropped_connection_reconnects_and_reloads_the_chat(demo_server, new_page, alice):
    """Guards against a page that stays dead after a network blip, or shows a stale chat."""
    page = await new_page()
    await page.add_init_script(TRACK_SOCKETS)
    await log_in(page, demo_server)
    await send(page, "What is 3+3?")
    await expect(last_turn(page)).to_have_attribute("data-status", "completed")
    session_id = session_id_of(page)

    await page.evaluate("window.__sockets.at(-1).close()")
    await expect(page.locator("#banner")).to_contain_text("Reconnecting")
    # Meanwhile the chat goes on elsewhere (an API client): the page must pick it up.
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{demo_server}/teams/cirkelline/runs", headers=bearer(alice),
                                     data={"message": "And 4+4?", "session_id": session_id, "stream": "false"})
    assert response.status_code == 200
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    await expect(page.locator("#banner")).to_be_hidden()
    await expect(page.locator(".msg.user .bubble")).to_have_text(["What is 3+3?", "And 4+4?"])
    assert await page.evaluate("window.__sockets.length") == 2
    await send(page, "And 5+5?")
    await expect(page.locator(".msg.assistant").nth(2).locator(".answer")).to_have_text("10")


async def test_the_chat_works_on_a_phone_sized_screen(demo_server, new_page, alice):
    """Guards against a layout that hides the composer or the chat list on narrow screens."""
    page = await new_page(390, 844)
    await log_in(page, demo_server)
    await expect(page.locator("#sidebar")).not_to_be_in_viewport()
    await send(page, "What is 6*7?")
    await expect(last_turn(page).locator(".answer")).to_have_text("42")
    await page.click("#open-sidebar")
    await expect(page.locator("#sidebar")).to_be_in_viewport()
    await expect(page.locator("#sessions li .session-link")).to_have_text(["What is 6*7?"])
    await page.click("#close-sidebar")
    await expect(page.locator("#sidebar")).not_to_be_in_viewport()
    box = await page.locator("#input").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
