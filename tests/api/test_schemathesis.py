"""schemathesis against a live server, over every API operation of the OpenAPI document.

A real Daphne (tests.live) on the test database, with the offline scripted model (no provider
is ever called), authenticated as a test user with a JWT. For each operation, schemathesis
generates valid and invalid requests from the document and checks every answer: no 5xx (the
documented 502/503/504 cannot happen here: no provider, the database is up), a documented status,
a body matching its documented schema, documented headers. And a refused request (4xx) writes
nothing: the rows of the chat, metrics, token and session tables are counted before and after.

Bounded so CI stays well under two minutes: a few examples per operation, derandomized
(the same cases every run), no example database. The HTML pages (tag `pages`) are left to the
page and browser tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from django.apps import apps
from django.conf import settings
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from chat.api.openapi import document
from tests.api.test_openapi import DOCUMENTED_AHEAD, routed_paths
from tests.live import live_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

MAX_EXAMPLES = 8
# The statuses each operation answered, for the test after the fuzzing.
STATUSES: dict[str, set[int]] = {}
# Tables a request may write to: the app's (chat, profiles and memories), usage and cost, tokens, login sessions.
WRITTEN_APPS = ("chat", "personal", "knowledge", "metrics", "token_blacklist", "sessions", "auth")

# Paths documented before their route is on main (test_openapi's DOCUMENTED_AHEAD) cannot be called yet.
NOT_YET_ROUTED = sorted(DOCUMENTED_AHEAD - routed_paths())
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document()))).exclude(tag="pages")
if NOT_YET_ROUTED:
    schema = schema.exclude(path=NOT_YET_ROUTED)
# The test's own JWT authenticates every case; schemathesis must not generate credentials (random
# bearer tokens would make nearly every case a 401). Refused credentials are checked by its
# `ignored_auth` check, which repeats a case without them.
schema.config.generation.update(with_security_parameters=False)
# A request over a documented limit (too many files, a message too long) is refused with 413, the
# status for it; schemathesis's list of rejections lacks it.
_rejections = schema.config.checks.negative_data_rejection
_rejections.expected_statuses = [*_rejections.expected_statuses, "413"]


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
JSON_TEXT_FIELDS = ("session_state", "dependencies", "metadata")


@schema.hook
def map_case(context, case):
    """A form sends a JSON object as JSON text (`contentSchema` in the document); a generated string is
    almost never one, so a valid (positive) case gets a JSON object's text in those fields."""
    if case.meta is not None and case.meta.generation.mode == schemathesis.GenerationMode.POSITIVE \
            and case.media_type in FORMS and isinstance(case.body, dict):
        for name in JSON_TEXT_FIELDS:
            if isinstance(case.body.get(name), str):
                case.body[name] = json.dumps({"generated": case.body[name]})
        if isinstance(case.body.get("requirements"), str):  # a continue's answers: a JSON array's text
            case.body["requirements"] = json.dumps([{"id": case.body["requirements"], "confirmation": True}])
        if case.operation.path == "/knowledge/content":
            # A document is told by its bytes (random bytes are no document: 415), and is a file or a
            # text, not both: a valid case uploads one piece of text.
            if "file" in case.body:
                case.body["file"] = b"A generated document about " + str(case.body.get("name", "")).encode()
                case.body.pop("text_content", None)
    return case


@schema.hook
def filter_case(context, case):
    """`GET /usage`'s range rule spans two parameters (from <= to, at most 366 days, `from` alone counts
    to today), which a schema cannot state: a valid (positive) case must also keep it."""
    if case.operation.path != "/usage" or case.meta is None \
            or case.meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return True
    query = case.query or {}
    try:
        end = date.fromisoformat(query["to"]) if "to" in query else datetime.now(UTC).date()
        start = date.fromisoformat(query["from"]) if "from" in query else end - timedelta(days=29)
    except (TypeError, ValueError):
        return True  # not a date: the schema's own business
    return start <= end and (end - start).days < 366


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    var = tmp_path_factory.mktemp("schemathesis-var")
    # Its own var/ (uploads), with this process's secret key (the tokens the test signs).
    env = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": "0", "CIRKELLINE_VAR_DIR": str(var),
           "DJANGO_SECRET_KEY": settings.SECRET_KEY}
    with django_db_blocker.unblock(), live_server(env) as url:
        yield url, var


# Written by the server process itself, whatever the requests: its lease on its runs (a heartbeat).
PROCESS_ROWS = frozenset({"metrics.WorkerLease"})


def row_counts() -> dict[str, int]:
    """The rows of every table a request may write to, in one statement: it runs before every case (and
    after every refusal), and a COUNT query per table (over 30 of them) cost more than the request.
    Uploaded documents still being processed are waited for first (their rows arrive after their
    answer). The test function itself stays as it is: hypothesis derives its fixed seed from it."""
    documents_settled()
    counted = [model for app in WRITTEN_APPS for model in apps.get_app_config(app).get_models()
               if model._meta.label not in PROCESS_ROWS]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(model._meta.db_table)})"
                                             for model in counted))
        return {model._meta.label: count for model, count in zip(counted, cursor.fetchone(), strict=True)}


def documents_settled(within: float = 10.0) -> None:
    """Wait (bounded) until no uploaded document is still being processed: the server chunks an
    accepted upload after answering it, so its rows may still arrive while the next case runs."""
    from chat.knowledge.models import DocumentStatus, KnowledgeDocument

    deadline = time.monotonic() + within
    while KnowledgeDocument.objects.filter(status=DocumentStatus.PROCESSING).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def stored_files(var: Path) -> list[str]:
    return sorted(str(p.relative_to(var)) for p in (var / "uploads").rglob("*") if p.is_file()) \
        if (var / "uploads").exists() else []


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_every_operation_answers_as_documented(case, server, django_user_model):
    base_url, var = server
    user = django_user_model.objects.filter(username="alice").first() or \
        django_user_model.objects.create_user("alice", password="alice-password-1")
    headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}"}
    if case.operation.path in ("/api/token/", "/api/token/refresh/", "/api/token/logout/", "/health", "/ready",
                               "/config", "/openapi.json"):
        headers = {}  # public routes: no credentials
    before, files_before = row_counts(), stored_files(var)
    response = case.call_and_validate(base_url=base_url, headers=headers, timeout=30)
    STATUSES.setdefault(f"{case.operation.method.upper()} {case.operation.path}", set()).add(response.status_code)
    if 400 <= response.status_code < 500:
        assert row_counts() == before, f"a refused request ({response.status_code}) wrote rows"
        assert stored_files(var) == files_before, f"a refused request ({response.status_code}) stored files"


def test_the_fuzzing_reached_the_success_paths():
    """The cases above were authenticated and valid often enough to succeed: a run of all-401s or
    all-400s would check nothing of the success paths."""
    if not STATUSES:
        pytest.skip("run together with test_every_operation_answers_as_documented")
    succeeded = {operation for operation, statuses in STATUSES.items() if any(200 <= s < 300 for s in statuses)}
    assert {"GET /health", "GET /ready", "GET /config", "GET /openapi.json", "GET /teams", "GET /teams/{team_id}",
            "POST /teams/{team_id}/runs", "GET /sessions", "POST /uploads", "GET /usage", "GET /profile",
            "PATCH /profile", "GET /memories", "POST /memories", "DELETE /memories", "GET /memory_topics",
            "GET /user_memory_stats"} <= succeeded, STATUSES
