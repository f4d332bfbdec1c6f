"""The API's contract: an OpenAPI 3.1 document of every HTTP route, served at `/openapi.json`.

Hand-maintained, as Python data (helpers keep the repeated error responses in one place), and
kept from drifting by tests (tests/api/test_openapi.py): every URL pattern of the project is a
path here and every documented path + method resolves to a view that accepts it; the document
validates against the OpenAPI 3.1 schema; schemathesis (tests/api/test_schemathesis.py) calls
every operation on a live server and checks each answer against its documented status and
schema; the SSE event shapes are checked against a real stream. Prose: docs/API.md.

Change a route, its body or its answers, and change this document in the same commit.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from django.conf import settings

from .common import BEARER, COOKIE
from .events import event_schemas
from .feedback import feedback_paths, feedback_schemas
from .knowledge import knowledge_paths, knowledge_schemas
from .paths import all_paths
from .personal import personal_paths, personal_schemas
from .runs import run_paths, run_schemas
from .schemas import component_schemas


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once per process; callers must not mutate it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cirkelline API",
            "version": settings.CIRKELLINE_VERSION,
            "summary": "Cirkelline's HTTP API: AgentOS-compatible team runs, sessions and teams, tokens and usage.",
            "description": (
                "Wire-compatible with agno AgentOS where AgentOS has the route (agno's `AgentOSClient` and "
                "`RemoteTeam` work unchanged). Every error is JSON `{\"detail\": \"<a sentence>\"}` plus the "
                "fields the error names and the response's `request_id`. Authenticate with "
                "`Authorization: Bearer <access token>` from `POST /api/token/`, or, in the browser, with the "
                "login cookie (writes need the `X-CSRFToken` header). The websocket `/ws/chat/` is described on "
                "`/docs`; the prose reference is docs/API.md. On any route, a `Host` header the server does not "
                "answer to is a 400, and an unknown path a 404, both with the same JSON body."),
        },
        "servers": [{"url": "/", "description": "This server."}],
        "tags": [
            {"name": "tokens", "description": "JWT access and refresh tokens."},
            {"name": "runs", "description": "Team runs: SSE streams, answers, cancel, lookups; uploads."},
            {"name": "sessions", "description": "Your sessions and their runs."},
            {"name": "teams", "description": "The teams."},
            {"name": "usage", "description": "Your own tokens and cost."},
            {"name": "profile", "description": "Your profile: name, timezone, custom instructions, memories on/off."},
            {"name": "memories", "description": "What Cirkelline remembers about you (AgentOS' memory routes)."},
            {"name": "knowledge", "description": "Your documents and the shared ones (AgentOS' knowledge routes)."},
            {"name": "feedback", "description": "Your ratings of answers: thumbs up or down, a comment."},
            {"name": "service", "description": "Health, readiness, metrics, configuration and this document."},
            {"name": "pages", "description": "The browser pages (HTML, login cookie)."},
        ],
        "security": [BEARER, COOKIE],
        "paths": {**all_paths(), **run_paths(), **personal_paths(), **feedback_paths(), **knowledge_paths()},
        "components": {
            "schemas": {**component_schemas(), **run_schemas(), **event_schemas(), **personal_schemas(),
                        **feedback_schemas(), **knowledge_schemas()},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "An access token from `POST /api/token/`. A present but bad header is "
                                              "always a 401 (no fallback to the cookie)."},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sessionid",
                                  "description": "The pages' login cookie (`/login/`)."},
                "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                              "description": "Django's CSRF token (cookie `csrftoken`): required with the login "
                                             "cookie on POST, PATCH and DELETE, else 403."},
                "metricsToken": {"type": "http", "scheme": "bearer",
                                 "description": "`CIRKELLINE_METRICS_TOKEN` (for `/metrics` only)."},
            },
        },
    }


@functools.cache
def document_json() -> bytes:
    """The document as compact JSON (encoded once per process)."""
    return json.dumps(document(), separators=(",", ":")).encode()
