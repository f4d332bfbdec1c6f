"""Hostile and malformed input on every route: a clear 4xx, never a 500, nothing written."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import AccessToken

from chat.models import ChatRun, ChatSession
from metrics.models import RunUsage
from tests.conftest import adb, bearer

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


async def test_bodies_over_the_limit_are_413(api, alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    big = "x" * 4096
    json_body = await api.post(RUNS, json={"message": big}, headers=bearer(alice))
    form_body = await api.post(RUNS, data={"message": big}, headers=bearer(alice))
    rename = await api.post("/sessions/abc/rename", json={"session_name": big}, headers=bearer(alice))
    assert [r.status_code for r in (json_body, form_body)] == [413, 413]
    assert "too large" in json_body.json()["detail"]
    assert rename.status_code in (400, 413)
    assert await adb(RunUsage.objects.count) == 0


async def test_too_many_or_too_large_files_are_413(api, alice, settings):
    settings.CIRKELLINE_MAX_FILES = 2
    settings.CIRKELLINE_MAX_FILE_BYTES = 100
    three = [("files", (f"{i}.txt", b"hello", "text/plain")) for i in range(3)]
    too_many = await api.post(RUNS, data={"message": "hi"}, files=three, headers=bearer(alice))
    too_big = await api.post(RUNS, data={"message": "hi"}, files={"files": ("a.txt", b"x" * 101, "text/plain")},
                             headers=bearer(alice))
    assert (too_many.status_code, too_big.status_code) == (413, 413)
    assert "Too many files" in too_many.json()["detail"] and "too large" in too_big.json()["detail"]
    assert await adb(RunUsage.objects.count) == 0


async def test_a_broken_multipart_body_is_400(api, alice):
    response = await api.post(RUNS, content=b"--nope\r\nnot really multipart",
                              headers={**bearer(alice), "Content-Type": "multipart/form-data; boundary=zzz"})
    assert response.status_code == 400


async def test_absurdly_nested_json_is_400(api, alice):
    nested = b"[" * 100_000 + b"]" * 100_000
    response = await api.post(RUNS, content=nested, headers={**bearer(alice), "Content-Type": "application/json"})
    assert response.status_code == 400
    deep_state = b'{"message": "hi", "session_state": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001
    response = await api.post(RUNS, content=deep_state, headers={**bearer(alice), "Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize("body", [
    {"message": "hi\x00there"},
    {"message": "hi", "session_state": {"a\x00": 1}},
    {"message": "hi", "metadata": {"a": ["x\x00"]}},
    {"message": "hi", "dependencies": {"a": float("nan")}},
    {"message": "hi", "session_state": {"a": float("inf")}},
    {"message": "hi\ud800"},
    {"message": "hi", "metadata": {"\udc00": 1}},
])
async def test_text_no_database_can_store_and_non_json_numbers_are_400(api, alice, body):
    """No database stores a NUL character or a lone surrogate, and NaN/Infinity are not JSON:
    refused up front."""
    as_json = await api.post(RUNS, content=json.dumps(body).encode(),
                             headers={**bearer(alice), "Content-Type": "application/json"})
    assert as_json.status_code == 400, as_json.text
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    if "\ud800" not in form["message"]:  # a form body is UTF-8: it cannot carry a lone surrogate
        as_form = await api.post(RUNS, data=form, headers=bearer(alice))
        assert as_form.status_code == 400, as_form.text
    assert any(word in as_json.json()["detail"] for word in ("NUL", "JSON", "surrogate"))
    rename = await api.post("/sessions/abc/rename", json={"session_name": "a\x00b"}, headers=bearer(alice))
    listing = await api.get("/sessions", params={"session_name": "a\x00"}, headers=bearer(alice))
    assert (rename.status_code, listing.status_code) == (400, 400)
    assert await adb(RunUsage.objects.count) == 0


def test_payloads_are_encoded_so_any_database_stores_them():
    from chat.payload import PayloadEncoder

    encoded = json.dumps({"text\x00": ["a\x00b", float("nan"), {"x": float("-inf")}], "ok": "\\u0000 stays"},
                         cls=PayloadEncoder)
    assert "NaN" not in encoded and "Infinity" not in encoded
    assert json.loads(encoded) == {"text\ufffd": ["a\ufffdb", None, {"x": None}], "ok": "\\u0000 stays"}
    lone = json.dumps({"a": "x\ud800y", "b": "\udc00", "c": "\U0001f600 pairs stay"}, cls=PayloadEncoder)
    assert json.loads(lone) == {"a": "x\ufffdy", "b": "\ufffd", "c": "\U0001f600 pairs stay"}
    for plain in ({"a": [1, 2.5, "three"]}, {"emoji": "\U0001f600", "text": "æøå"}):
        assert json.dumps(plain, cls=PayloadEncoder) == json.dumps(plain)


async def test_rename_rejects_bad_names(api, alice):
    for body in ({}, {"session_name": ""}, {"session_name": 5}, {"session_name": "x" * 256}):
        response = await api.post("/sessions/abc/rename", json=body, headers=bearer(alice))
        assert response.status_code == 400, body


# --- the fuzzer ------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/teams/{team}/runs"),
    ("GET", "/teams/{team}/runs/{run}"),
    ("POST", "/teams/{team}/runs/{run}/cancel"),
    ("GET", "/teams/{team}"),
    ("GET", "/teams"),
    ("GET", "/sessions"),
    ("GET", "/sessions/{session}"),
    ("DELETE", "/sessions/{session}"),
    ("GET", "/sessions/{session}/runs"),
    ("POST", "/sessions/{session}/rename"),
]
FIELDS = ["message", "stream", "session_id", "deep_research", "session_state", "dependencies", "metadata",
          "stream_events", "user_id", "background", "session_name", "files"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ids = st.sampled_from(["cirkelline", "nope", "s-1", "", "a" * 70, "../x", "%00", "ünïcødé", "1;DROP TABLE"]) | \
    st.text(max_size=30)


@st.composite
def nearly_valid_runs(draw):
    """A run request by alice with a proper message, plus random (often wrong) other fields."""
    body = {"message": draw(st.text(min_size=1, max_size=60).filter(str.strip)), "stream": draw(
        st.sampled_from([False, "false", True, "true", "maybe", 3]))}
    body.update(draw(st.dictionaries(st.sampled_from(FIELDS[1:]), json_values, max_size=3)))
    encoding = draw(st.sampled_from(["json", "form"]))
    return "POST", "/teams/cirkelline/runs", body, encoding, "alice", {}


@st.composite
def random_requests(draw):
    method, template = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    path = template.format(team=quote(draw(ids), safe=""), run=quote(draw(ids), safe=""),
                           session=quote(draw(ids), safe=""))
    body = draw(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=6))
    encoding = draw(st.sampled_from(["json", "form", "raw", "none", "broken-json"]))
    auth = draw(st.sampled_from(["alice", "none", "garbage", "bob"]))
    query = draw(st.dictionaries(st.sampled_from(["limit", "page", "sort_by", "sort_order", "type", "x"]),
                                 st.text(max_size=12), max_size=3))
    return method, path, body, encoding, auth, query


hostile_requests = nearly_valid_runs() | random_requests()


def _send_kwargs(body, encoding) -> dict:
    if encoding == "json":
        return {"content": json.dumps(body, default=str).encode(), "headers": {"Content-Type": "application/json"}}
    if encoding == "form":
        return {"data": {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in body.items()}}
    if encoding == "raw":
        return {"content": json.dumps(body, default=str).encode()[::-1],
                "headers": {"Content-Type": "application/octet-stream"}}
    if encoding == "broken-json":
        return {"content": b'{"message": "hi", ', "headers": {"Content-Type": "application/json"}}
    return {}


def test_fuzzed_requests_never_cause_a_500_nor_rows_for_rejected_requests(alice, bob):
    from cirkelline_site.asgi import application

    tokens = {"alice": f"Bearer {AccessToken.for_user(alice)}", "bob": f"Bearer {AccessToken.for_user(bob)}",
              "garbage": "Bearer abc.def.ghi"}
    accepted_runs: set[str] = set()
    statuses: list[int] = []

    async def send(method, path, body, encoding, auth, query):
        kwargs = _send_kwargs(body, encoding)
        headers = dict(kwargs.pop("headers", {}))
        if auth in tokens:
            headers["Authorization"] = tokens[auth]
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.request(method, path, params=query, headers=headers, **kwargs)
        if response.status_code == 200 and method == "POST" and path.endswith("/runs"):
            text = response.text
            if text.startswith("id: "):  # an SSE stream: its first frame's data line
                accepted_runs.add(json.loads(text.split("\n")[2][6:])["run_id"])
            else:
                accepted_runs.add(response.json()["run_id"])
        return response

    @hypothesis_settings(max_examples=500, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(hostile_requests)
    def check(request):
        response = loop.run(send(*request))
        statuses.append(response.status_code)
        assert response.status_code < 500, (request, response.status_code, response.text[:300])
        if response.status_code >= 400:
            assert "detail" in response.json()

    # One event loop for all the examples (what a server has), not one each: on each new loop the
    # app started its per-loop work again (the reaper's sweep, the lease, the uploads sweep).
    with asyncio.Runner() as loop:
        check()

    assert len(statuses) >= 500
    assert len(set(statuses)) > 4  # the fuzzer reached many different outcomes
    assert accepted_runs  # and valid runs too, not only refusals
    usage_runs = set(RunUsage.objects.values_list("run_id", flat=True))
    assert usage_runs == accepted_runs  # every row belongs to an accepted request
    assert set(ChatRun.objects.filter(parent_run_id=None).values_list("run_id", flat=True)) == accepted_runs
    assert ChatSession.objects.exclude(runs__run_id__in=accepted_runs).count() == 0
