"""The OpenAPI document (chat.api.openapi) cannot drift from the code.

- It is a valid OpenAPI 3.1 document (openapi-spec-validator).
- Every URL pattern of the project is a documented path, and every documented path exists.
- Every documented method of a path is accepted by its view, and every other method is a 405.
- The SSE events real runs stream, and the error bodies of the failures schemathesis cannot
  provoke (502, 504, 429 from the provider), match their documented schemas.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from chat.api.openapi import document
from tests.conftest import bearer, parse_sse

RUNS = "/teams/cirkelline/runs"
METHODS = ("get", "post", "put", "patch", "delete")
# Routes outside the API's contract: Django's admin site (its own pages and forms, staff only).
UNDOCUMENTED_PREFIXES = ("/admin/",)
# Paths documented before their route is on main (a route built on another branch against this
# contract): listed here until it lands; the test below fails once the route exists, saying so.
DOCUMENTED_AHEAD: set[str] = set()
CSRF_SECRET = "a" * 32
SAMPLE_PARAMS = {"team_id": "cirkelline", "session_id": "no-such-session", "run_id": "no-such-run",
                 "memory_id": "no-such-memory", "content_id": "no-such-content"}


def routed_paths(patterns=None, prefix: str = "") -> set[str]:
    """Every URL pattern of the project as an OpenAPI path (`<str:team_id>` -> `{team_id}`)."""
    paths = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if ("/" + route).startswith(UNDOCUMENTED_PREFIXES):
                continue
            paths |= routed_paths(pattern.url_patterns, route)
        else:
            assert isinstance(pattern, URLPattern)
            assert not route.startswith("^"), f"a regex route cannot be matched to the document: {route}"
            paths.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return paths


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], path)


def schema_of(path: str, method: str, status: int, media: str = "application/json") -> dict:
    doc = document()
    response = doc["paths"][path][method]["responses"][str(status)]
    return {**response["content"][media]["schema"], "components": doc["components"]}


def assert_conforms(path: str, method: str, status: int, body, media: str = "application/json") -> None:
    jsonschema.Draft202012Validator(schema_of(path, method, status, media)).validate(body)


def test_the_document_is_valid_openapi_3_1():
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc, cls=OpenAPIV31SpecValidator)  # raises with the first problem
    assert json.loads(json.dumps(doc)) == doc  # plain JSON data: what /openapi.json serves


def test_the_validator_would_refuse_a_broken_document():
    """The check above can fail: an undefined reference is refused."""
    broken = json.loads(json.dumps(document()))
    broken["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/NoSuchSchema"}
    with pytest.raises(Exception):  # noqa: B017 - the validator's own error classes vary by case
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_every_route_is_documented_and_every_documented_path_is_routed():
    routed = routed_paths()
    documented = set(document()["paths"])
    assert routed - documented == set(), "routes missing from the OpenAPI document (chat/api/openapi/)"
    assert documented - routed <= DOCUMENTED_AHEAD, "documented paths with no route"
    arrived = DOCUMENTED_AHEAD & routed
    assert not arrived, f"{arrived} now exist: remove them from DOCUMENTED_AHEAD in this test"
    for path in documented - DOCUMENTED_AHEAD:
        try:
            resolve(concrete(path))
        except Resolver404:
            pytest.fail(f"{path} does not resolve")


@pytest.mark.django_db(transaction=True)
async def test_each_documented_method_is_accepted_and_every_other_is_a_405(api):
    """Without credentials, so nothing runs or is written: a documented method gets anything but
    405 (401, 302, 200 ...), an undocumented one gets 405. A CSRF token is sent, so that the
    pages' CSRF check (a 403 before the view) does not hide a view that takes the method."""
    api.cookies.set("csrftoken", CSRF_SECRET)
    for path, item in document()["paths"].items():
        if path in DOCUMENTED_AHEAD:
            continue
        url = concrete(path)
        for method in METHODS:
            response = await api.request(method.upper(), url, headers={"X-CSRFToken": CSRF_SECRET})
            if method in item:
                assert response.status_code not in (404, 405), (method, path, response.status_code)
            else:
                assert response.status_code == 405, (method, path, response.status_code)


@pytest.mark.django_db(transaction=True)
async def test_openapi_json_serves_the_document(api):
    response = await api.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == document()


def _validate_events(frames) -> set[str]:
    doc = document()
    listed = {ref["$ref"].rsplit("/", 1)[1] for ref in doc["components"]["schemas"]["SseEvent"]["oneOf"]}
    listed.discard("OtherEvent")
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/SseEvent",
                                                 "components": doc["components"]})
    for frame in frames:
        assert frame.event in listed, f"{frame.event} is streamed but not documented in SseEvent"
        validator.validate(frame.data)
    return {frame.event for frame in frames}


@pytest.mark.django_db(transaction=True)
async def test_streamed_events_match_the_documented_shapes(api, alice, failures, settings):
    from chat.agents.scripted import provider_error

    delegated = await api.post(RUNS, data={"message": "Please research the history of Copenhagen"},
                               headers=bearer(alice))
    assert delegated.status_code == 200
    seen = _validate_events(parse_sse(delegated.text))
    assert {"TeamRunStarted", "TeamToolCallStarted", "TeamToolCallCompleted", "RunStarted", "RunContent",
            "RunCompleted", "TeamRunContent", "TeamRunCompleted"} <= seen

    failures.push(provider_error(500), when="mid-stream")  # retried: the partial text is discarded
    retried = await api.post(RUNS, data={"message": "hello"}, headers=bearer(alice))
    assert "TeamRunContentDiscarded" in _validate_events(parse_sse(retried.text))

    settings.CIRKELLINE_MAX_RETRIES = 0
    failures.push(provider_error(500))
    failed = await api.post(RUNS, data={"message": "hello"}, headers=bearer(alice))
    frames = parse_sse(failed.text)
    assert frames[-1].event == "TeamRunError" and frames[-1].data["error_type"] == "provider_error"
    _validate_events(frames)


@pytest.mark.django_db(transaction=True)
async def test_run_failures_match_their_documented_bodies(api, alice, failures, settings, use_latency):
    from chat.agents.scripted import provider_error

    settings.CIRKELLINE_MAX_RETRIES = 0
    failures.push(provider_error(500))
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 502
    assert_conforms("/teams/{team_id}/runs", "post", 502, response.json())

    failures.push(provider_error(429))
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 429
    assert_conforms("/teams/{team_id}/runs", "post", 429, response.json())

    settings.CIRKELLINE_RUN_TIMEOUT = 0.2
    use_latency(1.0)
    response = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert response.status_code == 504
    assert_conforms("/teams/{team_id}/runs", "post", 504, response.json())
    with pytest.raises(jsonschema.ValidationError):  # the check can fail: a body without error_type
        assert_conforms("/teams/{team_id}/runs", "post", 504, {"detail": "x", "run_id": "r", "session_id": "s"})


def _media_examples():
    for path, item in document()["paths"].items():
        for method, op in item.items():
            bodies = [("request", op.get("requestBody", {}).get("content", {}))]
            bodies += [(status, response.get("content", {})) for status, response in op["responses"].items()]
            for where, content in bodies:
                for media, obj in content.items():
                    values = [obj["example"]] if "example" in obj else []
                    values += [example["value"] for example in obj.get("examples", {}).values()]
                    for value in values:
                        yield f"{method} {path} {where} {media}", obj["schema"], value


def test_every_example_matches_its_schema():
    components = document()["components"]
    checked = 0
    for where, schema, value in _media_examples():
        if "event-stream" in where:  # the frames' data, each an SseEvent
            frames = parse_sse(value)
            assert frames, where
            validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/SseEvent",
                                                         "components": components})
            for frame in frames:
                validator.validate(frame.data)
        else:
            jsonschema.Draft202012Validator({**schema, "components": components}).validate(value)
        checked += 1
    assert checked >= 10


def test_text_patterns_refuse_what_the_server_refuses():
    """A NUL anywhere, or nothing but white space, is a 400 from the server: a pattern that lets
    either through sends schemathesis (and client generators) after values the API refuses."""
    from chat.api.openapi.common import NONBLANK, TEXT

    def valid(schema, value):
        return jsonschema.Draft202012Validator(schema).is_valid(value)

    for value in ["\x00", "a\x00", "\x00a", " \x00 "]:
        assert not valid(TEXT, value) and not valid(NONBLANK, value), repr(value)
    for value in ["", "  ", "\t\n"]:
        assert not valid(NONBLANK, value), repr(value)
    for value in ["a", " a ", "Hvad er 6 x 7?"]:
        assert valid(TEXT, value) and valid(NONBLANK, value), repr(value)


def test_json_bodies_take_other_keys_only_as_json_without_nul():
    """Found by schemathesis: a JSON body's free keys (a rename's, a run's, `filters`) were documented as
    any JSON, NUL characters included, which the server refuses anywhere in a JSON body (400)."""
    components = document()["components"]

    def valid(name, value):
        return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                                "components": components}).is_valid(value)

    kept = {"session_name": "Trip"}
    assert valid("RenameRequest", {**kept, "label": {"colours": ["red", 1, None, {"deep": [True]}]}})
    for extra in [{"a\x00": 1}, {"k": "a\x00"}, {"k": {"n": ["ok", {"m\x00": 1}]}}, {"k": [[["\x00"]]]}]:
        assert not valid("RenameRequest", {**kept, **extra}), extra
    assert not valid("RunRequest", {"message": "hi", "session_state": {"x": ["\x00"]}})
    assert not valid("SearchRequest", {"query": "q", "filters": {"\x00": "x"}})
    assert valid("SearchRequest", {"query": "q", "filters": {"tag": ["a", 2]}})


@pytest.mark.django_db(transaction=True)
async def test_usage_and_a_budget_refusal_match_their_documented_bodies(api, alice):
    """With real rows (schemathesis's user has none): /usage's day and model rows, and the 402."""
    from metrics.models import Budget
    from tests.conftest import adb

    ran = await api.post(RUNS, data={"message": "Please research the history of Copenhagen", "stream": "false"},
                         headers=bearer(alice))
    assert ran.status_code == 200
    usage = await api.get("/usage", headers=bearer(alice))
    assert usage.status_code == 200
    body = usage.json()
    assert body["totals"]["runs"] == 1 and body["by_model"]
    assert_conforms("/usage", "get", 200, body)

    await adb(Budget.objects.create, user=alice, monthly_limit=0)
    refused = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers=bearer(alice))
    assert refused.status_code == 402
    assert_conforms("/teams/{team_id}/runs", "post", 402, refused.json())


@pytest.mark.django_db(transaction=True)
async def test_a_delegation_failure_event_matches_its_documented_shape(api, alice, settings, use_latency):
    """A member that stays silent past the stall limit (chat.runs.monitor) is announced mid-stream."""
    from metrics.models import FailureKind

    assert {kind.value for kind in FailureKind} == set(  # the document's list of kinds is the model's
        document()["components"]["schemas"]["DelegationFailureDetected"]["properties"]["kind"]["enum"])
    settings.CIRKELLINE_MEMBER_STALL_SECONDS = 0.3
    use_latency(1.5)
    response = await api.post(RUNS, data={"message": "Please research the history of Copenhagen"},
                              headers=bearer(alice))
    assert "DelegationFailureDetected" in _validate_events(parse_sse(response.text))


@pytest.mark.django_db(transaction=True)
async def test_a_paused_run_and_its_continuation_match_their_documented_shapes(api, alice):
    import json

    paused_frames = parse_sse((await api.post(RUNS, data={"message": "Please ask me anything"},
                                              headers=bearer(alice))).text)
    assert "TeamRunPaused" in _validate_events(paused_frames)
    paused = paused_frames[-1].data
    url = f"{RUNS}/{paused['run_id']}/continue"
    answered = [{"id": paused["requirements"][0]["id"], "values": {"focus": "x"}}]
    continued = parse_sse((await api.post(url, data={"requirements": json.dumps(answered)},
                                          headers=bearer(alice))).text)
    assert {"TeamRunContinued", "TeamRunCompleted"} <= _validate_events(continued)
    again = await api.post(url, json={"requirements": answered}, headers=bearer(alice))
    assert again.status_code == 409
    assert_conforms("/teams/{team_id}/runs/{run_id}/continue", "post", 409, again.json())

    body = (await api.post(RUNS, data={"message": "Do a deep research on tides", "stream": "false"},
                           headers=bearer(alice))).json()
    assert body["status"] == "PAUSED"
    assert_conforms("/teams/{team_id}/runs", "post", 200, body)
    done = await api.post(f"{RUNS}/{body['run_id']}/continue", json={
        "requirements": [{"id": body["requirements"][0]["id"], "confirmation": True}], "stream": False},
        headers=bearer(alice))
    assert done.status_code == 200 and done.json()["status"] == "COMPLETED"
    assert_conforms("/teams/{team_id}/runs/{run_id}/continue", "post", 200, done.json())
