"""Browser tests: Debian's Chromium, driven by Playwright, against live Cirkelline servers the tests start.

Playwright cannot download browsers here, so it launches the system's Chromium through
`executable_path`. Without Chromium these tests are skipped on a developer machine and FAIL
under CI (`CI=true`): `.ci/run` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.live import live_server

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "alice-password-1"
# The demo model streams visibly (a short pause per delta); uploads are capped low so a test can
# show the limit message without a 20 MB file.
DEMO = {"CIRKELLINE_MODEL": "demo", "CIRKELLINE_SERVE_STATIC": "true", "CIRKELLINE_MAX_FILE_BYTES": "65536"}
# Every provider call waits 2 s first: long enough to press Stop mid-run.
# Every provider call takes 2 s; a member silent for 1 s is reported stalled (it answers 1 s later).
SLOW = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": "2.0", "CIRKELLINE_SERVE_STATIC": "true",
        "CIRKELLINE_MEMBER_STALL_SECONDS": "1.0"}


def chromium_executable() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        message = "Chromium is not installed (apt-get install chromium): the browser tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    """One Chromium per test module (the tests of a module share its event loop)."""
    executable = chromium_executable()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture(scope="module")
def demo_server(django_db_setup, django_db_blocker) -> Iterator[str]:
    with django_db_blocker.unblock(), live_server(DEMO) as url:
        yield url


@pytest.fixture
def slow_server(django_db_setup, django_db_blocker) -> Iterator[str]:
    with django_db_blocker.unblock(), live_server(SLOW) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def new_page(browser):
    """await new_page(width, height) -> a page in a fresh browser context; JS errors fail the test."""
    contexts, errors = [], []

    async def open_page(width: int = 1280, height: int = 800):
        context = await browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


async def log_in(page, base_url: str, username: str = "alice", password: str = PASSWORD) -> None:
    """Open the site as a stranger (sent to the login page), log in, wait for the live socket."""
    await page.goto(base_url + "/")
    await expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    await page.fill("#id_username", username)
    await page.fill("#id_password", password)
    await page.click("button[type=submit]")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open")


async def send(page, text: str) -> None:
    await page.fill("#input", text)
    await page.press("#input", "Enter")


def last_turn(page):
    return page.locator(".msg.assistant").last


async def save_screenshot(page) -> Path:
    """The chat page for the README: always under var/; into docs/ when missing or when
    CIRKELLINE_UPDATE_SCREENSHOT=1 (so an ordinary test run leaves the tree clean)."""
    target = ROOT / "var" / "screenshot-chat.png"
    await page.screenshot(path=str(target))
    docs = ROOT / "docs" / "screenshot-chat.png"
    if not docs.exists() or os.environ.get("CIRKELLINE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(target, docs)
    return target
