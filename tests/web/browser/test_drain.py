"""The chat page across a rolling restart: behind the shipped nginx configuration with two workers
(PostgreSQL + Redis), the worker holding the page's socket is sent SIGTERM while it answers; the
answer finishes on screen, the socket is closed with 1012, the page reconnects through nginx to
the other worker, and the next message is answered there."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest
from django.conf import settings
from playwright.async_api import expect

from chat.models import ChatRun
from metrics.models import RunUsage
from tests.conftest import adb
from tests.deploy.nginx import nginx
from tests.live import live_server_process

from .conftest import SLOW, last_turn, log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

CLOSE_CODES = """
  window.__closes = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); this.addEventListener('close', (e) => window.__closes.push(e.code)); }
  };
"""


@pytest.fixture
def two_workers(django_db_setup, django_db_blocker) -> Iterator[tuple[str, list]]:
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("several workers need PostgreSQL and Redis (the CI PostgreSQL + Redis pass runs this)")
    env = {**SLOW, "CIRKELLINE_SCRIPTED_LATENCY": "1.0", "REDIS_URL": settings.REDIS_URL,
           "CIRKELLINE_DRAIN_SECONDS": "30"}
    with django_db_blocker.unblock(), live_server_process(env) as first, live_server_process(env) as second, \
            nginx([first.base_url, second.base_url]) as proxy:
        yield proxy, [first, second]


async def test_a_drained_worker_finishes_the_answer_and_the_page_moves_to_the_other(two_workers, new_page, alice):
    """Guards against a page that treats the server's 1012 as the end (no reconnect), and against a
    restart that cuts the answer being written."""
    proxy, workers = two_workers
    page = await new_page()
    await page.add_init_script(CLOSE_CODES)
    await log_in(page, proxy)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    await send(page, "Please research the history of Copenhagen")
    row = None
    while row is None:
        row = await adb(lambda: RunUsage.objects.filter(user=alice).first())
        await asyncio.sleep(0.05)
    by_pid = {w.proc.pid: w for w in workers}
    stopping = by_pid[int(row.worker.split(":")[-2])]
    stopping.proc.send_signal(signal.SIGTERM)

    turn = last_turn(page)
    await expect(turn).to_have_attribute("data-status", "completed", timeout=30_000)
    stored = await adb(lambda: ChatRun.objects.get(run_id=row.run_id).payload["content"])
    assert stored and stored.startswith((await turn.locator(".answer").text_content())[:20])
    assert stopping.proc.wait(timeout=30) == 0
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=30_000)
    assert 1012 in await page.evaluate("window.__closes")

    await send(page, "What is 2+2?")
    # The second answer by position: until the page adds it, the last answer is the first one,
    # already completed.
    await expect(page.locator(".msg.assistant").nth(1)).to_have_attribute("data-status", "completed",
                                                                         timeout=30_000)
    rows = await adb(lambda: list(RunUsage.objects.filter(user=alice).order_by("started_at")
                                  .values_list("status", "worker")))
    assert [status for status, _ in rows] == ["completed", "completed"]
    assert int(rows[1][1].split(":")[-2]) != stopping.proc.pid
