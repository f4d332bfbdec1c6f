"""agno's agent-ui, the real one, against a live Cirkelline: the team is listed, an answer streams
in and stays, the session reopens with its history, and the browser enforces CORS throughout.

agent-ui (tests/web/agent_ui.py: built once per machine, `make agent-ui`) is served from
http://localhost:<port>, Cirkelline from http://127.0.0.1:<other port>: every API call is
cross-origin, so a missing or wrong CORS header fails these tests exactly as it fails a user.
Without the build these tests are skipped on a developer machine and FAIL under CI (`CI=true`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import expect

from chat.models import ChatRun
from tests.conftest import adb
from tests.live import free_port, live_server
from tests.web import agent_ui

from .conftest import CHROMIUM_ARGS, PASSWORD, chromium_executable

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

# Long enough that its answer (which quotes it) streams for a while after agent-ui's first read of
# the session (tens of milliseconds into the stream, against some 0.8 s of streaming).
QUESTION = "Plan a picnic for Saturday in the park by the lake, with sandwiches, lemonade and games for six children"
# Seconds of quiet before an SSE heartbeat comment: shorter than the demo's pauses (its provider
# latency, its delegations), so the stream agent-ui reads has comments between its frames.
HEARTBEAT = 0.015
# Chromium resolves nothing but the two local names: no request leaves 127.0.0.1.
OFFLINE_ARGS = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]

# Records every distinct text of the newest answer paragraph (the demo's starts so), as it changes.
RECORD_ANSWER = """() => {
  window.__answers = [];
  new MutationObserver(() => {
    const texts = [...document.querySelectorAll('div, p')].filter((e) => e.children.length === 0)
      .map((e) => e.textContent).filter((t) => t.startsWith('(Offline'));
    const text = texts.length ? texts[texts.length - 1] : '';
    if (text && window.__answers[window.__answers.length - 1] !== text) window.__answers.push(text);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def built_agent_ui() -> None:
    try:
        agent_ui.built_dir()
    except agent_ui.AgentUiMissing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def ui_port() -> int:
    built_agent_ui()
    return free_port()


@pytest.fixture(scope="module")
def api_server(ui_port, django_db_setup, django_db_blocker) -> Iterator[str]:
    """Cirkelline (the visibly streaming demo model), allowing agent-ui's origin and no other, with
    an SSE heartbeat (`: ping`) in every pause of its streams longer than HEARTBEAT."""
    env = {"CIRKELLINE_MODEL": "demo", "CIRKELLINE_CORS_ORIGINS": f"http://localhost:{ui_port}",
           "CIRKELLINE_SSE_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    with django_db_blocker.unblock(), live_server(env) as url:
        yield url


@pytest.fixture(scope="module")
def ui_server(ui_port) -> Iterator[str]:
    with agent_ui.serve(ui_port) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    """This module's Chromium: the shared flags, and no name resolution beyond 127.0.0.1."""
    executable = chromium_executable()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=OFFLINE_ARGS)
        yield browser
        await browser.close()


def access_token(api_server: str) -> str:
    response = httpx.post(f"{api_server}/api/token/", json={"username": "alice", "password": PASSWORD}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access"]


async def enter_token(page, token: str) -> None:
    """Type the access token into agent-ui's sidebar (agent-ui keeps it in memory only)."""
    await page.get_by_text("NO TOKEN SET").click()
    await page.get_by_placeholder("Enter authentication token...").fill(token)
    await page.get_by_placeholder("Enter authentication token...").press("Enter")


async def open_agent_ui(page, ui_server: str, api_server: str, token: str) -> None:
    """Point agent-ui at Cirkelline (its endpoint lives in localStorage), enter the token and
    switch it to team mode, as a person does in its sidebar."""
    await page.add_init_script(
        f"localStorage.setItem('endpoint-storage', JSON.stringify({{state: {{selectedEndpoint: '{api_server}'}}, "
        "version: 0}))"
    )
    await page.goto(ui_server + "/")
    await enter_token(page, token)
    mode = page.get_by_role("combobox").first
    await expect(mode).to_have_text(re.compile("agent", re.I))
    await mode.click()
    await page.get_by_role("option", name=re.compile("^team$", re.I)).click()


async def test_agent_ui_lists_the_team_streams_the_answer_and_reopens_the_session(
    api_server, ui_server, new_page, alice
):
    """Guards against agent-ui showing no answer: it reads GET /sessions/{id}/runs while the first
    answer streams and replaces its chat with whatever array it gets (a 200 [] for the session
    claimed at admission left neither question nor answer), and against a CORS header missing on
    any route it calls."""
    page = await new_page()
    token = access_token(api_server)
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    # What agent-ui fetched from Cirkelline, in order, with each response's CORS header.
    calls: list[tuple[str, str, int, str | None]] = []
    page.on("response", lambda r: r.url.startswith(api_server) and calls.append(
        (r.request.method, r.url[len(api_server):], r.status, r.headers.get("access-control-allow-origin"))))
    await open_agent_ui(page, ui_server, api_server, token)

    # The team is listed (GET /teams, cross-origin, with the token) and chosen.
    team = page.get_by_role("combobox").nth(1)
    await expect(team).to_have_text(re.compile("cirkelline", re.I))
    await expect(page).to_have_url(re.compile(r"[?&]team=cirkelline"))
    await team.click()
    await expect(page.get_by_role("option", name=re.compile("cirkelline", re.I))).to_be_visible()
    await page.keyboard.press("Escape")

    await page.evaluate(RECORD_ANSWER)
    async with page.expect_event("requestfinished",
                                 lambda r: r.method == "POST" and r.url.endswith("/teams/cirkelline/runs"),
                                 timeout=30_000):
        await page.get_by_placeholder("Ask anything").fill(QUESTION)
        await page.get_by_placeholder("Ask anything").press("Enter")
    stream_done_at = len(calls)

    run = await adb(lambda: ChatRun.objects.filter(user=alice, parent_run_id=None).values(
        "run_id", "session__session_id", "payload").get())
    answer = run["payload"]["content"]
    session_id = run["session__session_id"]
    assert answer.startswith("(Offline demo") and QUESTION in answer
    await expect(page.get_by_text(QUESTION, exact=True)).to_be_visible()
    await expect(page.get_by_text(answer, exact=True)).to_be_visible()
    shown = await page.evaluate("window.__answers")
    assert len(shown) >= 3 and shown[-1] == answer, shown  # it streamed in, and stayed
    assert all(answer.startswith(text) for text in shown), shown

    # While the answer streamed, agent-ui asked for the session's runs: not found yet, as AgentOS says.
    runs_url = f"/sessions/{session_id}/runs"
    read_mid_stream = [c for c in calls[:stream_done_at] if c[0] == "GET" and c[1].startswith(runs_url)]
    assert [c[2] for c in read_mid_stream] == [404], f"agent-ui's reads of the session during the stream: {calls}"

    # A fresh page: the endpoint is remembered, the token entered again; the session is listed
    # by the server and opens with its stored question and answer.
    await page.reload()
    await enter_token(page, token)
    await expect(page.get_by_text(QUESTION, exact=True)).to_have_count(0)
    await page.get_by_text(QUESTION[:20]).click()
    await expect(page.get_by_text(QUESTION, exact=True)).to_be_visible()
    await expect(page.get_by_text(answer, exact=True)).to_be_visible()
    reopened = [c for c in calls[stream_done_at:] if c[0] == "GET" and c[1].startswith(runs_url)]
    assert reopened and reopened[-1][2] == 200, calls

    # The streams agent-ui read had heartbeat comments between their frames (the same run, again).
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{api_server}/teams/cirkelline/runs", data={"message": QUESTION},
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and "\n\n: ping\n\n" in response.text

    # Every call crossed origins and carried the CORS header; the browser refused none.
    origin = ui_server
    assert {method for method, *_ in calls} >= {"GET", "POST"}
    assert [c for c in calls if c[3] != origin] == [], calls
    assert [e for e in console_errors if "CORS" in e] == [], console_errors


async def test_a_page_on_an_origin_not_allowed_is_refused_by_the_browser(api_server, ui_server, new_page, alice):
    """Guards against the test above passing without CORS being checked: the same agent-ui, from
    an origin Cirkelline does not allow (127.0.0.1 instead of localhost), cannot read the API."""
    token = access_token(api_server)
    fetch = """async ([url, token]) => {
      try {
        const r = await fetch(url, {headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'}});
        return `status ${r.status}`;
      } catch (error) { return `refused: ${error.name}`; }
    }"""
    allowed, other = await new_page(), await new_page()
    # Its favicon: a document on agent-ui's origin that runs none of agent-ui's own requests.
    await allowed.goto(ui_server + "/favicon.ico")
    await other.goto(ui_server.replace("localhost", "127.0.0.1") + "/favicon.ico")
    assert await allowed.evaluate(fetch, [f"{api_server}/teams", token]) == "status 200"
    assert await other.evaluate(fetch, [f"{api_server}/teams", token]) == "refused: TypeError"
