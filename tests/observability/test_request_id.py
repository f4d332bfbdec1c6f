"""Request ids: echoed when sane, replaced when not, in error bodies, on every log line of a request and its run."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from chat.agents.scripted import provider_error
from tests.conftest import bearer, parse_sse
from tests.observability.conftest import AsgiStream, form

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
GENERATED = re.compile(r"[0-9a-f]{32}")


async def raw_get(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[bytes, bytes], bytes]:
    """A GET straight into the ASGI app, with header bytes no HTTP client library would send."""
    from cirkelline_site.asgi import application

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("testserver", 80)}
    sent: list[dict] = []
    request_sent = False

    async def receive():
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the response ends the exchange

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


async def test_a_sane_request_id_comes_back_and_a_missing_one_is_generated(api):
    """Guards against the middleware missing, or echoing nothing."""
    sent = await api.get("/health", headers={"X-Request-ID": "abc-123"})
    assert sent.status_code == 200 and sent.headers["X-Request-ID"] == "abc-123"
    generated = await api.get("/health")
    assert GENERATED.fullmatch(generated.headers["X-Request-ID"])
    assert generated.headers["X-Request-ID"] != (await api.get("/health")).headers["X-Request-ID"]


@pytest.mark.parametrize("incoming", [
    b"abc\r\nSet-Cookie: sessionid=stolen",
    b"abc\nX-Injected: 1",
    b"a" * 10_240,
    b"has spaces in it",
    b"quote\"and<angle>",
    b"",
])
async def test_a_malicious_or_odd_request_id_is_replaced(incoming):
    """Guards against an incoming id being trusted as is: header injection, log-line forging, 10 KB lines."""
    status, headers, _ = await raw_get("/health", [(b"x-request-id", incoming)])
    assert status == 200
    returned = headers[b"X-Request-ID"]
    assert returned != incoming and GENERATED.fullmatch(returned.decode())


async def test_error_bodies_carry_the_request_id(api, alice):
    """Guards against error bodies a user cannot quote: 401, 404 of a route and of a session, 405."""
    headers = {"X-Request-ID": "support-ticket-7"}
    unauthenticated = await api.get("/sessions", headers=headers)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == {"detail": unauthenticated.json()["detail"], "request_id": "support-ticket-7"}
    assert int(unauthenticated.headers["Content-Length"]) == len(unauthenticated.content)
    missing_route = await api.get("/no/such/route", headers=headers)
    assert missing_route.status_code == 404 and missing_route.json()["request_id"] == "support-ticket-7"
    missing_session = await api.get("/sessions/not-alices", headers={**headers, **bearer(alice)})
    assert missing_session.status_code == 404
    assert missing_session.json() == {"detail": "Session not found.", "request_id": "support-ticket-7"}
    wrong_method = await api.delete("/health", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.json()["request_id"] == "support-ticket-7"
    # a successful body is the API's own, untouched
    assert "request_id" not in (await api.get("/health", headers=headers)).json()


async def test_a_streamed_run_carries_the_request_id_header(api, alice):
    """Guards against streaming responses (SSE) leaving without the header."""
    response = await api.post(RUNS, data={"message": "hi"}, headers={**bearer(alice), "X-Request-ID": "stream-1"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "stream-1"
    assert parse_sse(response.text)[-1].event == "TeamRunCompleted"


@pytest.mark.urls("tests.observability.urls")
async def test_log_lines_of_a_request_carry_its_id(api, log_lines):
    """Guards against log lines that cannot be tied to the request that wrote them."""
    response = await api.get("/test-only/log", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 418 and response.json()["request_id"] == "abc-123"
    line = next(r for r in log_lines.records if r.name == "tests.observability")
    assert line.request_id == "abc-123"
    assert "[abc-123 -] a line logged while answering the request" in log_lines.text


def _retry_lines(caplog) -> list:
    # chat.agents.retry logs retries today; the run service's hooks.provider_retry will (cirkelline.provider)
    return [r for r in caplog.records if r.name in ("chat.agents.retry", "cirkelline.provider")]


@pytest.mark.urls("tests.observability.urls")
async def test_log_lines_of_a_run_carry_the_id_of_the_request_that_started_it(api, alice, failures, log_lines,
                                                                               settings, use_latency):
    """Guards against the id not reaching the run task, or a later request's id overwriting it.

    The run's provider call fails (429) after 1 s and is retried; meanwhile another request is
    answered. The run's retry line names the run's request, the other line the other request.
    """
    settings.CIRKELLINE_RETRY_DELAY = 0.01
    use_latency(1.0)
    failures.push(provider_error(429))
    form_headers, body = form(message="hi")
    headers = {**bearer(alice), **form_headers, "X-Request-ID": "run-request"}
    async with AsgiStream("POST", RUNS, headers, body) as run:
        assert run.status == 200 and run.headers[b"X-Request-ID"] == b"run-request"
        lines = run.lines()
        async for line in lines:
            if line.startswith("data: ") and json.loads(line[6:])["event"] == "TeamRunStarted":
                break
        other = await api.get("/test-only/log", headers={"X-Request-ID": "other-request"})
        assert other.status_code == 418
        assert not _retry_lines(log_lines)  # the run's provider call is still going
        rest = [line async for line in lines]
    assert any('"TeamRunCompleted"' in line for line in rest)
    retries = _retry_lines(log_lines)
    assert [r.request_id for r in retries] == ["run-request"]
    other_line = next(r for r in log_lines.records if r.name == "tests.observability")
    assert other_line.request_id == "other-request"
