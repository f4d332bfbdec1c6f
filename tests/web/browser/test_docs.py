"""`/docs` in Chromium: Swagger UI renders every operation of /openapi.json under the site's
Content-Security-Policy, and the page asks nothing of any other host."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import expect

from chat.api.openapi import document

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

# Run in the page before its own scripts (Playwright injects it; the CSP does not apply to it).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


async def test_docs_page_renders_every_operation_offline(demo_server, new_page):
    page = await new_page(1280, 900)
    requested, refused, console_errors = [], [], []

    async def only_this_server(route):
        host = urlsplit(route.request.url).hostname
        requested.append(route.request.url)
        if host != "127.0.0.1":
            refused.append(route.request.url)
            await route.abort()
        else:
            await route.continue_()

    await page.context.route("**/*", only_this_server)
    await page.add_init_script(WATCH_CSP)
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

    response = await page.goto(demo_server + "/docs")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]

    operations = [(method, path) for path, item in document()["paths"].items() for method in item]
    blocks = page.locator(".opblock")
    await expect(blocks.first).to_be_visible()
    await expect(blocks).to_have_count(len(operations))
    for method, path in (("post", "/teams/{team_id}/runs"), ("get", "/sessions"), ("post", "/api/token/")):
        block = page.locator(f".opblock-{method}").filter(has=page.locator(f'[data-path="{path}"]'))
        await expect(block).to_have_count(1)

    # An operation opens: its responses and schemas render from the document.
    await page.locator(".opblock-post").filter(has=page.locator('[data-path="/teams/{team_id}/runs"]')).locator(
        ".opblock-summary").click()
    await expect(page.locator(".responses-table").first).to_contain_text("402")
    await expect(page.locator("#websocket")).to_contain_text("run_finished")

    assert refused == [], f"requests that would have left the server: {refused}"
    assert any(url.endswith("/openapi.json") for url in requested)
    assert await page.evaluate("window.__cspViolations") == []
    assert [text for text in console_errors if "Content Security Policy" in text] == []
