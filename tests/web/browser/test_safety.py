"""What the chat page must never do: run markup from a message, accept what the API refuses,
or serve pages without their security headers."""

from __future__ import annotations

import re
import struct
import zlib

import httpx
import pytest
from playwright.async_api import expect

from chat.models import ChatRun
from tests.conftest import adb

from .conftest import last_turn, log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]
browser_test = pytest.mark.asyncio(loop_scope="module")

XSS = 'Look: <img src=x onerror="window.__xss=1"> and [x](javascript:alert(1)) <script>window.__xss=2</script>'


def tiny_png() -> bytes:
    """A real 1x1 PNG, built here (no binary fixture in the repository)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x66\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@browser_test
async def test_markup_in_a_message_and_in_the_answer_stays_inert(demo_server, new_page, alice):
    """Guards against rendering Markdown without sanitising it (the demo answer repeats the
    message, so the payload reaches the Markdown renderer as model output)."""
    page = await new_page()
    await log_in(page, demo_server)
    await send(page, XSS)
    turn = last_turn(page)
    await expect(turn).to_have_attribute("data-status", "completed")
    await expect(turn.locator(".answer")).to_contain_text("Look:")
    await expect(page.locator(".msg.user .bubble")).to_have_text(XSS)  # the user's own text, as text
    assert await turn.locator(".answer a").count() >= 1  # the link was rendered, without its href
    assert await page.evaluate("window.__xss") is None
    assert await page.evaluate("document.querySelectorAll('[onerror], [onload], [onclick]').length") == 0
    assert await page.evaluate("""[...document.querySelectorAll('[href], [src]')]
        .filter(e => /^\\s*javascript:/i.test(e.getAttribute('href') || e.getAttribute('src') || '')).length""") == 0
    assert await page.evaluate("document.querySelectorAll('.answer script').length") == 0
    await page.reload()  # and again when rendered from the stored history
    await expect(last_turn(page).locator(".answer")).to_contain_text("Look:")
    assert await page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert await page.evaluate("window.__xss") is None


@browser_test
async def test_an_attached_png_reaches_the_image_specialist(demo_server, new_page, alice):
    """Guards against attachments that are shown in the page but never reach the specialist."""
    page = await new_page()
    await log_in(page, demo_server)
    png = {"name": "dot.png", "mimeType": "image/png", "buffer": tiny_png()}
    await page.set_input_files("#file-input", files=[png])
    await expect(page.locator("#attachments .attachment .name")).to_have_text("dot.png")
    await send(page, "What do you think of this?")
    turn = last_turn(page)
    await expect(turn).to_have_attribute("data-status", "completed")
    await expect(turn.locator(".delegation .route")).to_have_text("Cirkelline → Image Specialist")
    await expect(page.locator(".msg.user .sent-files")).to_contain_text("dot.png")
    await expect(page.locator("#attachments li")).to_have_count(0)
    run_id = await turn.get_attribute("data-run-id")
    member = await adb(ChatRun.objects.get, parent_run_id=run_id)
    assert member.component_id == "image-specialist" and member.user_id == alice.pk
    leader_input = (await adb(ChatRun.objects.get, run_id=run_id)).payload["input"]
    assert len(leader_input["images"]) == 1


@browser_test
async def test_files_the_api_would_refuse_are_explained_before_sending(demo_server, new_page, alice):
    """Guards against silently dropping (or uploading) files over the limits."""
    page = await new_page()
    await log_in(page, demo_server)
    await page.set_input_files("#file-input", files=[
        {"name": "tool.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"},
        {"name": "big.png", "mimeType": "image/png", "buffer": b"\x89PNG" + b"\x00" * 70_000},
    ])
    notice = page.locator("#notice")
    await expect(notice).to_contain_text("tool.exe: this file type (application/x-msdownload) cannot be sent")
    await expect(notice).to_contain_text("big.png is 68 KB; the limit is 64 KB per file.")
    await expect(page.locator("#attachments li")).to_have_count(0)


def test_pages_send_a_strict_csp_and_a_safe_login_cookie(demo_server, alice):
    """Guards against inline scripts being allowed and a script-readable or cross-site login cookie."""
    with httpx.Client(base_url=demo_server, timeout=10) as client:
        anonymous = client.get("/")
        assert anonymous.status_code == 302 and anonymous.headers["location"] == "/login/?next=/"
        login_page = client.get("/login/")
        policy = login_page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        logged_in = client.post("/login/", data={"username": "alice", "password": "alice-password-1",
                                                 "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        assert logged_in.status_code == 302
        cookie = logged_in.headers["set-cookie"]
        assert "sessionid=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        page = client.get("/")
        scripts = re.findall(r"<script[^>]*>", page.text)
        assert page.status_code == 200 and scripts
        assert all('src="/static/' in tag or 'type="application/json"' in tag for tag in scripts), scripts
        assert client.get("/static/chat/vendor/purify.min.js").status_code == 200
