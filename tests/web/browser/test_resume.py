"""The chat page keeps a live answer across a dropped connection: it reconnects and resumes the
answer after the last event it showed, with no gap and no repeated word, ending with exactly the
stored answer; a second window opened mid-answer shows the whole answer."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from chat.models import ChatRun
from metrics.models import RunUsage
from tests.conftest import adb
from tests.doubles.fake_openai import FakeProvider
from tests.live import live_server

from .conftest import last_turn, log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

SESSION_URL = re.compile(r"/c/([0-9a-f-]{36})$")
# Every text the newest answer shows, in order (recorded in the page: nothing between polls is missed).
RECORD_ANSWER = """() => {
  window.__states = [];
  new MutationObserver(() => {
    const answers = document.querySelectorAll('.msg.assistant .answer');
    const text = answers.length ? answers[answers.length - 1].textContent : '';
    if (text && window.__states[window.__states.length - 1] !== text) window.__states.push(text);
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""
TRACK_SOCKETS = """
  window.__sockets = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
"""


@pytest.fixture
def slow_server(django_db_setup, django_db_blocker) -> Iterator[str]:
    """A server whose provider streams every answer (the member's, then the leader's) at 16 words
    a second: 40 words, ~2.5 s each."""
    with FakeProvider(answer_words=40, tokens_per_second=16, keep_alive=False) as fake:
        env = {"CIRKELLINE_MODEL": "openai-like:fake", "CIRKELLINE_MODEL_BASE_URL": fake.base_url,
               "CIRKELLINE_SERVE_STATIC": "true"}
        with django_db_blocker.unblock(), live_server(env) as url:
            yield url


async def stored_answer_as_rendered(page, base_url: str) -> str:
    """The stored run, rendered by the page's history view (the same markdown renderer)."""
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    turn = last_turn(page)
    await expect(turn).to_have_attribute("data-status", "completed")
    return await turn.locator(".answer").text_content()


def assert_grew_without_gaps_or_repeats(states: list[str], final: str) -> None:
    """Every text shown on the way was the start of the final answer: a repeated or missing word
    would have shown a text that is not (the final event replaces the text, hiding both)."""
    assert len(states) >= 3, states
    bad = [state for state in states if not final.startswith(state.rstrip())]
    assert not bad, (bad, final)


async def test_a_dropped_socket_resumes_the_live_answer_with_nothing_missing_or_repeated(slow_server, new_page,
                                                                                         alice):
    page = await new_page()
    await page.add_init_script(TRACK_SOCKETS)
    await log_in(page, slow_server)
    await page.evaluate(RECORD_ANSWER)
    await send(page, "Tell me about Copenhagen")
    turn = last_turn(page)
    await expect(turn.locator(".answer")).not_to_be_empty(timeout=30_000)
    shown_before = await turn.locator(".answer").text_content()
    await page.evaluate("window.__sockets.at(-1).close()")  # the network drops mid-answer
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open")  # back, on a new socket
    await expect(turn).to_have_attribute("data-status", "completed", timeout=30_000)
    final = await turn.locator(".answer").text_content()
    assert len(final) > len(shown_before)
    states = await page.evaluate("window.__states")
    assert_grew_without_gaps_or_repeats(states, final)
    assert await page.evaluate("window.__sockets.length") == 2

    run_id = await turn.get_attribute("data-run-id")
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "completed"  # the run went on while its socket was gone
    stored = await adb(lambda: ChatRun.objects.get(run_id=run_id).payload["content"])
    assert stored.split() == final.split()
    assert await stored_answer_as_rendered(page, slow_server) == final


async def test_a_window_opened_mid_answer_shows_the_whole_answer(slow_server, new_page, alice):
    first = await new_page()
    await log_in(first, slow_server)
    await send(first, "What is 2+2?")
    await expect(last_turn(first)).to_have_attribute("data-status", "completed", timeout=30_000)
    await send(first, "Tell me about Copenhagen")
    await expect(last_turn(first).locator(".answer")).not_to_be_empty(timeout=30_000)
    session_id = SESSION_URL.search(first.url).group(1)

    second = await new_page()
    await log_in(second, slow_server)
    await second.goto(f"{slow_server}/c/{session_id}")
    await expect(second.locator("#conn")).to_have_attribute("data-state", "open")
    late = last_turn(second)
    await expect(late).to_have_attribute("data-status", "completed", timeout=30_000)
    await expect(last_turn(first)).to_have_attribute("data-status", "completed", timeout=30_000)
    assert await late.locator(".answer").text_content() == await last_turn(first).locator(".answer").text_content()
    await expect(second.locator(".msg.user .bubble")).to_have_text(["What is 2+2?", "Tell me about Copenhagen"])
