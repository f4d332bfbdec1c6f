"""Requests the API refuses get the API's JSON `{"detail": ...}` with the right status, and the
status line a client reads says what the status is.

Covers what Django or Daphne/Twisted answered on their own (an HTML page, or an empty 400, or
"429 Unknown Status"), fields a client sends twice, and uploads agno cannot take.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from chat.api.parsing import event_index, integer
from chat.errors import BadRequest
from chat.models import ChatRun, ChatSession
from metrics.models import RunUsage
from tests.conftest import adb, bearer
from tests.live import live_server

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


async def nothing_written() -> bool:
    return [await adb(model.objects.count) for model in (RunUsage, ChatSession, ChatRun)] == [0, 0, 0]


async def test_a_host_not_allowed_is_a_json_400(api, alice):
    """Guards against Django's HTML "Bad Request (400)" page for a Host header outside
    DJANGO_ALLOWED_HOSTS."""
    for response in (await api.get("/health", headers={"Host": "evil.example"}),
                     await api.post(RUNS, data={"message": "hi"}, headers={**bearer(alice), "Host": "evil.example"})):
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert "Host" in response.json()["detail"]
    assert await nothing_written()


async def test_a_form_in_another_charset_is_a_json_400(api, alice):
    """Guards against Django's HTML 400 page for a form declaring `charset=latin-1` (Django reads
    forms as UTF-8 only)."""
    response = await api.post(RUNS, content=b"message=h%E9&stream=false",
                              headers={**bearer(alice), "Content-Type": "application/x-www-form-urlencoded; "
                                                                        "charset=latin-1"})
    assert response.status_code == 400 and "UTF-8" in response.json()["detail"]
    rename = await api.post("/sessions/abc/rename", content=b"session_name=x",
                            headers={**bearer(alice), "Content-Type": "application/x-www-form-urlencoded; "
                                                                      "charset=latin-1"})
    assert rename.status_code == 400 and "UTF-8" in rename.json()["detail"]
    assert await nothing_written()


async def test_multipart_without_a_boundary_is_a_json_400(api, alice):
    response = await api.post(RUNS, content=b"message=hi", headers={**bearer(alice),
                                                                     "Content-Type": "multipart/form-data"})
    assert response.status_code == 400 and "multipart" in response.json()["detail"]
    assert await nothing_written()


@pytest.mark.parametrize("field", ["user_id", "message", "session_id", "stream", "deep_research", "session_state",
                                   "stream_events"])
async def test_a_scalar_form_field_sent_twice_is_refused(api, alice, bob, field):
    """Guards against `user_id=<bob>&user_id=<alice>` (and the like) silently taking the last value:
    whoever checks the first one (a proxy, a log) and the server would disagree."""
    values = {"user_id": [str(bob.pk), str(alice.pk)], "message": ["one", "two"], "session_id": ["s-1", "s-2"],
              "stream": ["true", "false"], "deep_research": ["true", "false"], "session_state": ["{}", '{"a": 1}'],
              "stream_events": ["true", "false"]}[field]
    pairs = [(field, value) for value in values]
    if field != "message":
        pairs.append(("message", "hi"))
    body = "&".join(f"{key}={value}" for key, value in pairs).encode()
    response = await api.post(RUNS, content=body, headers={**bearer(alice),
                                                           "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400, response.text[:300]
    assert f"'{field}' was sent 2 times" in response.json()["detail"]
    multipart = await api.post(RUNS, data={field: values, **({} if field == "message" else {"message": "hi"})},
                               files={"unused": ("x.txt", b"x", "text/plain")}, headers=bearer(alice))
    assert multipart.status_code == 400 and f"'{field}'" in multipart.json()["detail"]
    assert await nothing_written()


async def test_a_json_key_sent_twice_is_refused(api, alice, bob):
    """Guards against the same smuggling in a JSON body, where json.loads keeps the last key."""
    body = f'{{"message": "hi", "user_id": {bob.pk}, "user_id": {alice.pk}, "stream": false}}'.encode()
    response = await api.post(RUNS, content=body, headers={**bearer(alice), "Content-Type": "application/json"})
    assert response.status_code == 400 and "'user_id'" in response.json()["detail"]
    nested = b'{"message": "hi", "session_state": {"a": 1, "a": 2}}'
    response = await api.post(RUNS, content=nested, headers={**bearer(alice), "Content-Type": "application/json"})
    assert response.status_code == 400 and "'a'" in response.json()["detail"]
    assert await nothing_written()


async def test_files_may_repeat(api, alice):
    files = [("files", ("a.txt", b"first", "text/plain")), ("files", ("b.txt", b"second", "text/plain"))]
    response = await api.post(RUNS, data={"message": "Summarise these", "stream": "false"}, files=files,
                              headers=bearer(alice))
    assert response.status_code == 200, response.text[:300]
    assert await adb(RunUsage.objects.count) == 1


async def test_an_empty_file_is_refused_by_name_before_the_run(api, alice, recorder):
    """Guards against an empty upload reaching agno, which refuses empty content after the run has
    started: a 500 (or `TeamRunError internal` when streamed) for a run that was billed."""
    files = [("files", ("notes.txt", b"some text", "text/plain")), ("files", ("empty.pdf", b"", "application/pdf"))]
    for stream in ("false", "true"):
        response = await api.post(RUNS, data={"message": "Read these", "stream": stream}, files=files,
                                  headers=bearer(alice))
        assert response.status_code == 400
        assert "'empty.pdf'" in response.json()["detail"] and "empty" in response.json()["detail"]
    assert recorder.calls == []
    assert await nothing_written()


@pytest.mark.parametrize("multipart", [True, False])
async def test_files_sent_as_text_fields_are_refused_not_dropped(api, alice, recorder, multipart):
    """Found by schemathesis: `files` as a plain text field (no filename: not a file part) was
    silently ignored, so the run went ahead without what the client meant to attach."""
    extra = {"files": [("other", ("x.txt", b"x", "text/plain"))]} if multipart else {}
    response = await api.post(RUNS, data={"message": "Read this", "stream": "false", "files": "notes.txt"},
                              headers=bearer(alice), **extra)
    assert response.status_code == 400
    assert "'files'" in response.json()["detail"]
    assert recorder.calls == []
    assert await nothing_written()
    upload = await api.post("/uploads", data={"files": "notes.txt"}, files=extra.get("files"), headers=bearer(alice))
    assert upload.status_code == 400 and "'files'" in upload.json()["detail"]


@pytest.mark.parametrize(("value", "expected"), [(None, 20), ("7", 7), ("007", 7), ("-0", 0), (7, 7), (7.0, 7),
                                               ("", None), (" 7", None), ("7 ", None), ("1_0", None), ("+7", None),
                                               ("\u0667", None), ("7.0", None), (7.5, None), (True, None),
                                               ("0", "range"), ("101", "range"), (-1, "range"), ("9" * 5000, "range")])
def test_an_integer_parameter_is_the_documented_integer_and_nothing_else(value, expected):
    """Found by schemathesis: Python's int() took what the document's `integer` does not (" 1", "1_0",
    other scripts' digits), and an empty value read as the default; each is a 400 naming the parameter."""
    if isinstance(expected, int):
        assert integer(value, "limit", 20, lo=0, hi=100) == expected
        return
    with pytest.raises(BadRequest) as refused:
        integer(value, "limit", 20, lo=1, hi=100)
    assert refused.value.status == 400
    assert refused.value.detail == ("'limit' must be between 1 and 100." if expected == "range"
                                    else "'limit' must be an integer.")


def test_an_event_index_to_resume_after_is_what_the_document_says():
    """Found by schemathesis: the document allowed any integer, the server refused below -1 and from 2**53
    on, and int() took " 41" or "4_1"."""
    assert [event_index(v, "'last_event_index'") for v in (None, "", "-1", "041", 41, "9" * 15, 10**15 - 1)] == \
        [None, None, -1, 41, 41, 10**15 - 1, 10**15 - 1]
    for value in (" 41", "4_1", "+41", "\u0664\u0661", "-2", "-0", "1" * 16, True, 4.5, -2, 10**15):
        with pytest.raises(BadRequest, match="must be -1 or an integer from 0 to 999999999999999"):
            event_index(value, "'last_event_index'")


# --- through a real Daphne server ------------------------------------------------------------


def _request(base_url: str, method: str, path: str, *, headers: dict[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, str, dict[str, str], bytes]:
    """One request exactly as written; the status code, the reason phrase, headers and body."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    headers = dict(headers or {})
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body or b""))}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.reason, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.live
def test_daphne_answers_refusals_with_json_and_a_proper_status_line(alice):
    """Guards against what the server said on its own: Twisted's bare, headerless 400 for multipart
    without a boundary (Twisted parsed the body before Django saw it), Django's HTML 400 for a bad
    Host, and "429 Unknown Status" (Twisted's reason table lacks 429)."""
    token = bearer(alice)
    with live_server({"CIRKELLINE_MAX_CONCURRENT_RUNS": "0"}) as base_url:
        status, reason, headers, body = _request(base_url, "POST", RUNS, body=b"message=hi",
                                                 headers={**token, "Content-Type": "multipart/form-data"})
        assert (status, headers.get("content-type")) == (400, "application/json"), body
        assert "multipart" in json.loads(body)["detail"]

        status, reason, headers, body = _request(base_url, "GET", "/health", headers={"Host": "evil.example"})
        assert (status, reason, headers.get("content-type")) == (400, "Bad Request", "application/json"), body
        assert "Host" in json.loads(body)["detail"]

        status, reason, headers, body = _request(
            base_url, "POST", RUNS, body=b"message=h%E9",
            headers={**token, "Content-Type": "application/x-www-form-urlencoded; charset=latin-1"})
        assert (status, headers.get("content-type")) == (400, "application/json") and b"UTF-8" in body

        status, reason, headers, body = _request(base_url, "POST", RUNS, body=b"message=hi",
                                                 headers={**token, "Content-Type": "application/x-www-form-urlencoded"})
        assert (status, reason) == (429, "Too Many Requests")
        assert int(headers["retry-after"]) >= 1 and "capacity" in json.loads(body)["detail"]
