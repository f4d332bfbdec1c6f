"""A long chat on the chat page: its latest answers load first, older ones as the conversation is
scrolled to its top, put above without moving what the reader is looking at."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from chat.models import ChatRun, ChatSession
from tests.conftest import adb

from .conftest import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

RUNS = 45  # pages of 20: the latest 20, then 20 more, then the first 5


def long_session(user) -> None:
    """A chat of RUNS answered questions; every third answer came from a member."""
    session = ChatSession.objects.create(session_id="long-chat", user=user, team_id="cirkelline",
                                         session_name="A long chat")
    for n in range(1, RUNS + 1):
        run_id = f"long-{n:02d}"
        answer = f"Answer {n}.\n\n" + "\n".join(f"- point {k} of answer {n}" for k in range(1, 4))
        ChatRun.objects.create(run_id=run_id, session=session, user=user, run_type="team", component_id="cirkelline",
                               status="COMPLETED",
                               payload={"run_id": run_id, "team_id": "cirkelline", "session_id": "long-chat",
                                        "status": "COMPLETED", "content": answer,
                                        "input": {"input_content": f"Question {n}"},
                                        "metrics": {"total_tokens": 100 + n, "duration": 1.5}})
        if n % 3 == 0:
            member = f"{run_id}-research"
            ChatRun.objects.create(run_id=member, session=session, user=user, run_type="agent",
                                   component_id="research-specialist", parent_run_id=run_id, status="COMPLETED",
                                   payload={"run_id": member, "agent_id": "research-specialist",
                                            "parent_run_id": run_id, "status": "COMPLETED",
                                            "run_input": f"look into {n}", "content": f"notes on {n}"})


def questions(start: int, end: int) -> list[str]:
    return [f"Question {n}" for n in range(start, end + 1)]


async def test_a_long_chat_loads_its_latest_answers_then_older_ones_on_scroll_without_a_jump(
        demo_server, new_page, alice):
    """Guards against a chat page that downloads a whole long session at once, one that never
    shows the older answers, and one whose view jumps when they are put above."""
    await adb(long_session, alice)
    page = await new_page()
    pages_asked: list[str] = []
    page.on("request", lambda request: "/runs" in request.url and pages_asked.append(request.url.split("/runs")[1]))
    await log_in(page, demo_server)
    await page.goto(f"{demo_server}/c/long-chat")
    bubbles = page.locator(".msg.user .bubble")
    messages = page.locator("#messages")
    older = page.locator(".older")

    # The latest 20 answers, the newest at the bottom in view, and a way to older ones.
    await expect(bubbles).to_have_text(questions(26, 45))
    await expect(page.locator(".msg.assistant").last.locator(".answer")).to_contain_text("Answer 45.")
    await expect(page.locator(".msg.assistant").filter(has_text="Answer 27.").locator(".delegation .route")) \
        .to_have_text("Cirkelline → Research Specialist")
    await expect(older).to_be_visible()
    assert pages_asked == ["?limit=20"]
    assert await messages.evaluate("e => e.scrollHeight - e.scrollTop - e.clientHeight") < 2  # at the bottom

    # Scrolled to the top: the page before is asked for; hold its answer to see the view before and after.
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(route):
        held.set()
        await release.wait()
        await route.continue_()

    await page.route("**/sessions/long-chat/runs?*before=*", hold)
    await messages.evaluate("e => e.scrollTo({top: 0, behavior: 'instant'})")
    await asyncio.wait_for(held.wait(), 20)
    await expect(older).to_contain_text("Loading earlier messages")
    reading = bubbles.filter(has_text="Question 26")
    top_before = (await reading.bounding_box())["y"]
    release.set()
    await expect(bubbles).to_have_text(questions(6, 45))
    assert abs((await reading.bounding_box())["y"] - top_before) <= 1  # what was on screen stays put
    assert await messages.evaluate("e => e.scrollTop") > 0
    await page.unroute("**/sessions/long-chat/runs?*before=*")

    # To the top again: the first 5, and nothing older to load.
    await messages.evaluate("e => e.scrollTo({top: 0, behavior: 'instant'})")
    await expect(bubbles).to_have_text(questions(1, 45))
    await expect(older).to_be_hidden()
    await expect(page.locator(".msg.assistant")).to_have_count(RUNS)
    await expect(page.locator(".delegation")).to_have_count(RUNS // 3)  # each member run under its answer
    assert pages_asked == ["?limit=20", "?limit=20&before=long-26", "?limit=20&before=long-06"]
