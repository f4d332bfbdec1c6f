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

import copy
import functools
import json
from typing import Any

from django.conf import settings

from chat.errors import AuthError
from chat.runs.request import MEDIA_TYPES

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
SSE = "text/event-stream"
HTML = "text/html"

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
DELEGATION_FAILURE_KINDS = ["announced_not_executed", "unknown_member", "empty_task", "member_error",
                            "member_empty_result", "member_stalled"]
RUN_ERROR_TYPES = ["provider_error", "timeout", "rate_limited", "internal"]

# Who may call: a bearer token, or the login cookie (plus the CSRF token for writes).
BEARER = {"bearerAuth": []}
COOKIE = {"sessionCookie": []}
COOKIE_CSRF = {"sessionCookie": [], "csrfToken": []}
READ_AUTH = [BEARER, COOKIE]
WRITE_AUTH = [BEARER, COOKIE_CSRF]
NO_AUTH: list = []


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required: list[str] | None = None, *, extra: bool = True, **more: Any) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if not extra:
        schema["additionalProperties"] = False
    schema.update(more)
    return schema


STR = {"type": "string"}
# What a client sends: any string but one with a NUL character (a 400 in every field).
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
# ... with something besides whitespace (fields the server strips first).
NONBLANK = {"type": "string", "pattern": "^[^\\u0000]*\\S[^\\u0000]*$"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
OBJ = {"type": "object"}
NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_OBJ = {"type": ["object", "null"]}
NULLABLE_ARRAY = {"type": ["array", "null"]}
ANY = {}
DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
# A flag: a JSON boolean, or in any body one of these words (case and surrounding spaces do not matter);
# null or absent: the default.
BOOLISH = {"enum": [True, False, "true", "false", "1", "0", "yes", "no", "on", "off", None]}
# A form field's value (a form has no arrays or objects: each field is sent once, as text).
SCALAR = {"type": ["string", "number", "boolean", "null"], "pattern": "^[^\\u0000]*$"}
FILES = {"type": "array", "minItems": 1, "maxItems": settings.CIRKELLINE_MAX_FILES,
         "items": {"type": "string", "format": "binary", "minLength": 1},
         "description": "Up to `CIRKELLINE_MAX_FILES` non-empty files, each up to `CIRKELLINE_MAX_FILE_BYTES`: images, "
                        "audio, video, documents (a part's Content-Type, or its file name, says which; others 415)."}
# The part types a file may have (chat.runs.request.MEDIA_TYPES).
FILE_TYPES = ", ".join(sorted(t for types in MEDIA_TYPES.values() for t in types))
# A day `GET /usage` takes: YYYY-MM-DD from 1970-01-01 to 9999-12-30.
USAGE_DAY = {"type": "string", "format": "date", "pattern": r"^(19[7-9]\d|[2-9]\d{3})-\d{2}-\d{2}$",
             "not": {"const": "9999-12-31"}}
USAGE_FIGURES = ["runs", "input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
                 "cache_write_tokens", "cost", "unpriced_tokens", "pricing"]


# --- responses ---------------------------------------------------------------------------------

def _error_response(description: str, schema: str = "Error", example: str | None = None,
                    headers: dict | None = None) -> dict:
    content: dict[str, Any] = {"schema": ref(schema)}
    if example:
        content["example"] = {"detail": example, "request_id": "3f2a9c0d5e6b4a7f8e9d0c1b2a3f4e5d"}
    response: dict[str, Any] = {"description": description, "content": {JSON: content}}
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": INT}}
WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": 'Always `Bearer realm="cirkelline"`.', "schema": STR}}
ALLOW = {"Allow": {"description": "The methods the route accepts.", "schema": STR}}

E400 = _error_response("The request is malformed: a field, parameter or id is wrong (the sentence names it).",
                       example="'message' is required and must be a non-empty string.")
E401 = _error_response("No valid credentials: none, a bad or expired token, a revoked token, an inactive or deleted "
                       "user.", example=AuthError.detail, headers=WWW_AUTHENTICATE)
E403 = _error_response("A cookie-authenticated write without a valid CSRF token, or a `user_id` naming someone "
                       "else.", example="CSRF check failed: CSRF token missing.")
E404 = _error_response("Not there, or not yours (never told apart).", example="Session not found.")
E405 = _error_response("The route does not take this method.", example="Method PUT is not allowed here.",
                       headers=ALLOW)
E413 = _error_response("The message, a file, the number of files or the body is too large.",
                       example="'message' is too long: the limit is 32000 characters.")
E415 = _error_response("Unsupported content type or file type.",
                       example="Unsupported content type 'text/plain': send JSON, form-urlencoded or multipart.")
E429 = _error_response("Too many requests: runs in progress (yours or the server's), pending uploads, or failed "
                       "logins. `Retry-After` says when to retry.", "RateLimited", headers=RETRY_AFTER)
E503 = _error_response("The database is unavailable; retry after `Retry-After` seconds.",
                       example="The database is unavailable right now; please retry shortly.", headers=RETRY_AFTER)


def _errors(*codes: int) -> dict:
    table = {400: E400, 401: E401, 403: E403, 404: E404, 405: E405, 413: E413, 415: E415, 429: E429, 503: E503}
    return {str(code): copy.deepcopy(table[code]) for code in codes}


def _ok(schema: dict, description: str = "OK", example: Any = None, status: int = 200) -> dict:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {str(status): {"description": description, "content": {JSON: content}}}


def _op(summary: str, tag: str, responses: dict, *, security: list | None = None, description: str = "",
        parameters: list | None = None, request_body: dict | None = None, operation_id: str) -> dict:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if request_body:
        op["requestBody"] = request_body
    op["security"] = NO_AUTH if security is None else security
    return op


def _path_param(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _query(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


TEAM_ID = _path_param("team_id", "The team: `cirkelline` (`GET /teams` lists them). Unknown: 404.",
                      {"type": "string", "example": "cirkelline"})
SESSION_ID = _path_param("session_id", "A session id of yours (an ill-formed id is a 400, another user's a 404).",
                         {"type": "string", "pattern": SESSION_ID_PATTERN, "example": "s-2026-12-01-a"})
RUN_ID = _path_param("run_id", "A run id of yours (the `run_id` of `TeamRunStarted`).",
                     {"type": "string", "pattern": SESSION_ID_PATTERN,
                      "example": "f0f2334e-62a2-433a-97c3-bf37761fe342"})


# --- schemas -----------------------------------------------------------------------------------

def _schemas() -> dict[str, Any]:
    usage_row = _obj({
        "runs": INT, "input_tokens": INT, "output_tokens": INT, "total_tokens": INT, "reasoning_tokens": INT,
        "cache_read_tokens": INT, "cache_write_tokens": INT,
        "cost": {"type": ["string", "null"], "pattern": r"^\d+\.\d{8}$",
                 "description": "Exact decimal string in `currency`, 8 places; null when nothing in the row is "
                                "priced (`pricing: unpriced`)."},
        "unpriced_tokens": {"type": "integer", "description": "Tokens of calls with no price rule (not guessed)."},
        "pricing": {"enum": ["priced", "unpriced", "partial", "none"],
                    "description": "How much of the cost is known: `none` (no runs: cost 0), `priced` (all), "
                                   "`unpriced` (nothing: cost null), `partial`."},
    }, USAGE_FIGURES)
    team_event_base = {
        "created_at": {"type": "integer", "description": "Unix seconds."},
        "event": STR, "team_id": STR, "team_name": STR, "run_id": STR, "parent_run_id": NULLABLE_STR,
        "session_id": STR, "nested_depth": INT, "content": ANY,
    }
    member_event_base = {
        "created_at": INT, "event": STR, "agent_id": STR, "agent_name": STR, "run_id": STR,
        "parent_run_id": {"type": "string", "description": "The team run that delegated to this member."},
        "session_id": STR, "nested_depth": INT, "content": ANY, "tools": NULLABLE_ARRAY,
    }
    tool = _obj({"tool_call_id": NULLABLE_STR, "tool_name": STR, "tool_args": NULLABLE_OBJ, "result": ANY,
                 "child_run_id": {"type": ["string", "null"], "description": "A delegation's member run."}},
                ["tool_name"])
    model_request_completed = {
        "model": STR, "model_provider": STR, "input_tokens": INT, "output_tokens": INT, "total_tokens": INT,
        "time_to_first_token": {"type": ["number", "null"]}, "reasoning_tokens": INT, "cache_read_tokens": INT,
        "cache_write_tokens": INT,
    }

    def team_event(name: str, description: str, **extra: Any) -> dict:
        return _obj({**team_event_base, **extra, "event": {"const": name}}, ["event", "run_id", "created_at"],
                    description=description)

    def member_event(name: str, description: str, **extra: Any) -> dict:
        return _obj({**member_event_base, **extra, "event": {"const": name}},
                    ["event", "run_id", "agent_id", "created_at"], description=description)

    events = {
        "TeamRunStarted": team_event("TeamRunStarted", "The team run began.", model=STR, model_provider=STR),
        "TeamModelRequestStarted": team_event("TeamModelRequestStarted", "The leader calls its model.", model=STR,
                                              model_provider=STR),
        "TeamModelRequestCompleted": team_event("TeamModelRequestCompleted", "A leader model call's tokens.",
                                                **model_request_completed),
        "TeamToolCallStarted": team_event("TeamToolCallStarted", "The leader calls a tool; "
                                          "`tool.tool_name == \"delegate_task_to_member\"` is a delegation.",
                                          tool=tool),
        "TeamToolCallCompleted": team_event("TeamToolCallCompleted", "A leader tool call finished; a delegation's "
                                            "`tool.child_run_id` is the member run.", tool=tool),
        "TeamToolCallError": team_event("TeamToolCallError", "A leader tool call failed.", tool=tool, error=ANY),
        "TeamRunContent": team_event("TeamRunContent", "A delta of the leader's answer (append `content`).",
                                     content=STR, content_type=STR, reasoning_content=NULLABLE_STR),
        "TeamRunContentCompleted": team_event("TeamRunContentCompleted", "The leader's answer text is complete."),
        "TeamRunCompleted": team_event("TeamRunCompleted", "Terminal: the full answer, the leader's metrics and the "
                                       "members' responses.", content=ANY, content_type=STR, metrics=OBJ,
                                       member_responses={"type": "array"}, session_state=NULLABLE_OBJ),
        "TeamRunCancelled": team_event("TeamRunCancelled", "Terminal: the run was cancelled.", reason=NULLABLE_STR),
        "TeamRunError": team_event("TeamRunError", "Terminal: the run failed; `content` is a sentence for a person.",
                                   content=STR, error_type={"type": "string", "enum": RUN_ERROR_TYPES},
                                   error_id=NULLABLE_STR,
                                   additional_data=_obj({"retry_after": {"type": ["number", "null"]}},
                                                        type=["object", "null"])),
        "TeamRunContentDiscarded": team_event(
            "TeamRunContentDiscarded", "Cirkelline's own: a leader model call failed mid-answer and is retried; drop "
            "the last `discarded_characters` of the leader's streamed text.", discarded_characters=INT),
        "DelegationFailureDetected": _obj({
            "event": {"const": "DelegationFailureDetected"}, "created_at": INT, "run_id": STR, "session_id": STR,
            "team_id": STR,
            "kind": {"enum": DELEGATION_FAILURE_KINDS},
            "member": {"type": "string", "description": "The member id (empty: the leader named no one)."},
            "excerpt": {"type": "string", "description": "The evidence (at most 300 characters)."}},
            ["event", "run_id", "kind"], description="Cirkelline's own: a delegation failure in this run (once per "
            "kind and member); `member_stalled` while the run goes on, the others just before the terminal event. "
            "Informative only."),
        "RunStarted": member_event("RunStarted", "A member run began.", model=STR, model_provider=STR),
        "ModelRequestStarted": member_event("ModelRequestStarted", "A member calls its model.", model=STR,
                                            model_provider=STR),
        "ModelRequestCompleted": member_event("ModelRequestCompleted", "A member model call's tokens.",
                                              **model_request_completed),
        "ToolCallStarted": member_event("ToolCallStarted", "A member calls a tool.", tool=tool),
        "ToolCallCompleted": member_event("ToolCallCompleted", "A member tool call finished.", tool=tool),
        "RunContent": member_event("RunContent", "A delta of a member's answer.", content=STR, content_type=STR),
        "RunContentCompleted": member_event("RunContentCompleted", "A member's answer text is complete."),
        "RunCompleted": member_event("RunCompleted", "A member run finished.", metrics=OBJ),
        "RunError": member_event("RunError", "A member run failed.", error_type=NULLABLE_STR),
        "RunCancelled": member_event("RunCancelled", "A member run was cancelled."),
        "RunContentDiscarded": member_event(
            "RunContentDiscarded", "Cirkelline's own: drop the last `discarded_characters` of this member run's "
            "streamed text (a retried model call).", discarded_characters=INT),
    }
    schemas: dict[str, Any] = {
        "Error": _obj({"detail": {"type": "string", "description": "A sentence for a person."},
                       "request_id": {"type": "string", "description": "The response's `X-Request-ID`, to quote."}},
                      ["detail"], description="Every error: `detail`, plus fields the error names."),
        "ValidationError": _obj({"detail": STR, "request_id": STR,
                                 "errors": {"type": "object", "description": "Per field, DRF's messages (absent "
                                            "when the body itself could not be parsed)."}},
                                ["detail"]),
        "RateLimited": _obj({"detail": STR, "request_id": STR,
                             "retry_after": {"type": "number", "description": "Seconds (runs and uploads)."}},
                            ["detail"]),
        "RunFailed": _obj({"detail": STR, "request_id": STR,
                           "error_type": {"type": "string", "enum": RUN_ERROR_TYPES},
                           "run_id": STR, "session_id": STR, "retry_after": NUM},
                          ["detail", "error_type", "run_id", "session_id"],
                          description="A non-streamed run that failed."),
        "RunAlreadyEnded": _obj({"detail": STR, "request_id": STR,
                                 "status": {"type": "string", "description": "How the run ended."}},
                                ["detail", "status"]),
        "LoginRequest": _obj({"username": NONBLANK, "password": {**TEXT, "minLength": 1}},
                             ["username", "password"],
                             example={"username": "alice", "password": "alice-password-1"}),
        "TokenPair": _obj({"access": {"type": "string", "description": "JWT, HS256; send as Bearer."},
                           "refresh": {"type": "string", "description": "JWT; single use (rotates)."}},
                          ["access", "refresh"], extra=False),
        "RefreshRequest": _obj({"refresh": NONBLANK}, ["refresh"]),
        "LogoutRequest": _obj({"refresh": NONBLANK, "everywhere": {"type": "boolean", "default": False}}, ["refresh"]),
        "LogoutResponse": _obj({"revoked": {"type": "string", "enum": ["token", "all"]}}, ["revoked"], extra=False),
        "Health": _obj({"status": {"const": "ok"}, "instantiated_at": {"type": "string", "format": "date-time"}},
                       ["status", "instantiated_at"]),
        "Ready": _obj({"status": {"const": "ready"},
                       "checks": {"type": "object", "additionalProperties": STR}}, ["status", "checks"]),
        "NotReady": _obj({"detail": STR, "request_id": STR, "status": {"const": "unavailable"},
                          "checks": {"type": "object", "additionalProperties": STR}}, ["detail", "status", "checks"]),
        "ModelSummary": _obj({"id": NULLABLE_STR, "provider": NULLABLE_STR, "name": NULLABLE_STR},
                             type=["object", "null"]),
        "TeamSummary": _obj({"id": STR, "name": NULLABLE_STR, "description": NULLABLE_STR, "db_id": NULLABLE_STR,
                             "mode": NULLABLE_STR, "model": ref("ModelSummary"), "metadata": NULLABLE_OBJ,
                             "sandboxed": BOOL}, ["id", "name"]),
        "TeamDetail": {"allOf": [ref("TeamSummary"), _obj({
            "role": NULLABLE_STR, "instructions": {"type": "array", "items": STR},
            "members": {"type": "array", "items": _obj({"id": STR, "name": STR, "role": NULLABLE_STR,
                                                        "model": ref("ModelSummary")}, ["id", "name"])},
            "session_table": STR}, ["members"])]},
        "Config": _obj({
            "status": STR, "service": STR, "version": STR, "os_id": STR, "name": STR, "description": STR,
            "available_models": {"type": "array", "items": _obj({"id": STR, "provider": STR})},
            "os_database": STR, "databases": {"type": "array", "items": STR}, "agents": {"type": "array"},
            "teams": {"type": "array", "items": ref("TeamSummary")}, "workflows": {"type": "array"},
            "interfaces": {"type": "array"}}, ["status", "os_id", "teams"]),
        "RunRequest": _obj({
            "message": {**NONBLANK, "maxLength": settings.CIRKELLINE_MAX_MESSAGE_CHARS,
                        "description": "The user's message (at most "
                        "`CIRKELLINE_MAX_MESSAGE_CHARS`, else 413)."},
            "stream": {**BOOLISH, "default": True, "description": "`true`: an SSE stream; "
                       "`false`: one JSON answer. Also `1`/`0`, `yes`/`no`."},
            "session_id": {"type": ["string", "null"], "pattern": r"^([A-Za-z0-9][A-Za-z0-9_.:-]{0,63})?$",
                           "description": "A session of yours to continue, or a new id; empty, null or absent: a "
                                          "new session."},
            "deep_research": {**BOOLISH, "default": False},
            "stream_events": {**BOOLISH, "default": True,
                              "description": "`false`: only content deltas, member events and the terminal event."},
            "session_state": {"type": ["object", "string", "null"],
                              "description": "A JSON object (a JSON string in forms)."},
            "dependencies": {"type": ["object", "string", "null"]},
            "metadata": {"type": ["object", "string", "null"]},
            "user_id": {**TEXT, "type": ["string", "integer", "null"],
                        "description": "Optional; if sent, your own user id or username (else "
                        "403). Never chooses the user."},
            "background": {"enum": [False, "false", "0", "no", "off", "", None],
                           "description": "Background runs are not offered: `true` is a 400."},
        }, ["message"], example={"message": "What is 2+2?", "stream": False}),
        "TeamRunOutput": _obj({
            "run_id": STR, "team_id": STR, "team_name": STR, "session_id": STR, "user_id": NULLABLE_STR,
            "content": ANY, "content_type": STR, "model": NULLABLE_STR, "model_provider": NULLABLE_STR,
            "created_at": INT, "status": {"type": "string", "description": "`COMPLETED` or `CANCELLED`."},
            "metrics": OBJ, "messages": {"type": "array"}, "member_responses": {"type": "array"}, "input": OBJ,
        }, ["run_id", "session_id", "status", "content"], description="agno's `TeamRunOutput.to_dict()`."),
        "StoredRun": _obj({
            "run_id": STR, "parent_run_id": NULLABLE_STR, "user_id": NULLABLE_STR, "status": NULLABLE_STR,
            "run_input": NULLABLE_STR, "content": ANY, "run_response_format": {"enum": ["text", "json"]},
            "reasoning_content": STR, "metrics": OBJ, "messages": NULLABLE_ARRAY, "tools": NULLABLE_ARRAY,
            "events": NULLABLE_ARRAY, "created_at": DATE_TIME, "session_state": NULLABLE_OBJ,
            "images": NULLABLE_ARRAY, "videos": NULLABLE_ARRAY, "audio": NULLABLE_ARRAY, "files": NULLABLE_ARRAY,
            "team_id": NULLABLE_STR, "session_id": NULLABLE_STR, "agent_id": STR, "agent_session_id": NULLABLE_STR,
        }, ["run_id", "status"], description="AgentOS `TeamRunSchema` (team runs, with `team_id`) or `RunSchema` "
                                             "(member runs, with `agent_id` and `parent_run_id`)."),
        "LiveRun": _obj({"run_id": STR, "team_id": STR, "session_id": STR, "user_id": STR,
                         "status": {"const": "RUNNING"}, "content": STR, "created_at": STR},
                        ["run_id", "status"], description="A run still in progress."),
        "CancelResult": _obj({"run_id": STR, "status": {"type": "string", "example": "cancelled"}},
                             ["run_id", "status"]),
        "SessionSummary": _obj({
            "session_id": STR, "session_name": STR, "session_state": NULLABLE_OBJ, "created_at": DATE_TIME,
            "updated_at": DATE_TIME, "session_type": STR, "user_id": NULLABLE_STR, "agent_id": NULLABLE_STR,
            "team_id": NULLABLE_STR, "workflow_id": NULLABLE_STR, "session_summary": ANY, "metrics": NULLABLE_OBJ,
            "total_tokens": {"type": ["integer", "null"]}, "metadata": NULLABLE_OBJ}, ["session_id", "session_name"]),
        "SessionsPage": _obj({
            "data": {"type": "array", "items": ref("SessionSummary")},
            "meta": _obj({"page": INT, "limit": INT, "total_pages": INT, "total_count": INT, "search_time_ms": NUM},
                         ["page", "limit", "total_pages", "total_count"])}, ["data", "meta"]),
        "SessionDetail": _obj({
            "session_id": STR, "session_name": STR, "user_id": NULLABLE_STR, "team_id": NULLABLE_STR,
            "session_summary": ANY, "session_state": NULLABLE_OBJ, "metrics": OBJ, "team_data": NULLABLE_OBJ,
            "metadata": NULLABLE_OBJ, "chat_history": {"type": "array", "items": OBJ}, "created_at": DATE_TIME,
            "updated_at": DATE_TIME, "total_tokens": {"type": ["integer", "null"]}},
            ["session_id", "session_name", "chat_history"]),
        "RenameRequest": _obj({"session_name": {**NONBLANK, "maxLength": 255}},
                              ["session_name"], example={"session_name": "Trip to Aarhus"}),
        "Uploads": _obj({
            "files": {"type": "array", "items": _obj({"id": STR, "name": STR,
                                                      "kind": {"enum": ["image", "audio", "video", "document"]},
                                                      "mime_type": STR, "size": INT},
                                                     ["id", "name", "kind", "mime_type", "size"])},
            "expires_in": {"type": "integer", "description": "Seconds an unused upload is kept."}},
            ["files", "expires_in"]),
        "UsageFigures": usage_row,
        "Usage": _obj({
            "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
            "currency": {"const": "USD"}, "totals": ref("UsageFigures"),
            "by_day": {"type": "array", "items": {"allOf": [ref("UsageFigures"),
                                                            _obj({"day": {"type": "string", "format": "date"}},
                                                                 ["day"])]}},
            "by_model": {"type": "array", "items": {"allOf": [
                _obj({"provider": STR, "model": STR, "calls": INT}, ["provider", "model", "calls"]),
                _obj({k: v for k, v in usage_row["properties"].items() if k != "runs"})]}},
        }, ["from", "to", "currency", "totals", "by_day", "by_model"]),
        "SseFrame": _obj({"event": {"type": "string", "description": "The event's name (as `data.event`)."},
                          "data": {"type": "string", "contentMediaType": JSON, "contentSchema": ref("SseEvent")}},
                         ["event", "data"], description="One frame of the stream (OpenAPI 3.1: the schema of a "
                                                        "`text/event-stream` describes each event)."),
        "SseEvent": {
            "description": "The `data:` JSON of one SSE frame (its `event:` line repeats `event`). Events not "
                           "listed here (agno has more: reasoning, memory, hooks) may arrive: `OtherEvent`; "
                           "skip the ones you do not know.",
            "oneOf": [ref(name) for name in events] + [ref("OtherEvent")],
        },
        "OtherEvent": _obj({"event": {"type": "string", "not": {"enum": list(events)}}, "created_at": INT,
                            "run_id": STR}, ["event"]),
    }
    schemas.update(events)
    for name in ("LoginRequest", "RefreshRequest", "LogoutRequest", "RenameRequest", "RunRequest"):
        schemas[name + "Form"] = _form_of(schemas[name])
    # `files` only as file parts (multipart): a text field of that name is a 400.
    schemas["RunRequestForm"]["propertyNames"] = {**TEXT, "not": {"const": "files"}}
    schemas["RunRequestMultipart"] = _form_of(schemas["RunRequest"], files=True)
    schemas["UploadRequest"] = _form_of(_obj({}, ["files"]), files=True)
    return schemas


def _form_of(schema: dict, *, files: bool = False) -> dict:
    """The form (urlencoded or multipart) variant of a JSON body's schema: each field once, as text (a
    repeated field is a 400), JSON objects as JSON text; with `files`, the repeatable file field."""
    properties = {}
    for name, prop in schema["properties"].items():
        if isinstance(prop.get("type"), list) and "object" in prop["type"]:
            prop = {**TEXT, "contentMediaType": JSON, "contentSchema": {"type": "object"},
                    "description": "A JSON object, as JSON text (empty: none)."}
        elif "enum" in prop:  # a form has no null: it would be the text "null"
            prop = {**prop, "enum": [value for value in prop["enum"] if value is not None]}
        elif "null" in prop.get("type", ()):
            prop = {**prop, "type": [t for t in prop["type"] if t != "null"]}
        properties[name] = prop
    if files:
        properties["files"] = FILES
    form = {**schema, "properties": properties, "propertyNames": TEXT, "additionalProperties": SCALAR}
    form.pop("example", None)
    return form


# --- paths -------------------------------------------------------------------------------------

def _run_request_body() -> dict:
    return {"required": True, "content": {
        JSON: {"schema": ref("RunRequest"), "examples": {
            "streamed": {"value": {"message": "Please research the history of Copenhagen"}},
            "answer": {"value": {"message": "What is 2+2?", "stream": False}}}},
        FORM: {"schema": ref("RunRequestForm")},
        MULTIPART: {"schema": ref("RunRequestMultipart"), "encoding": {"files": {"contentType": FILE_TYPES}}},
    }}


SSE_EXAMPLE = (
    'event: TeamRunStarted\ndata: {"created_at":1796138642,"event":"TeamRunStarted","team_id":"cirkelline",'
    '"team_name":"Cirkelline","run_id":"f0f2334e-62a2-433a-97c3-bf37761fe342","session_id":"s1","nested_depth":0,'
    '"model":"gemini-2.5-flash","model_provider":"Google"}\n\n'
    'event: TeamRunContent\ndata: {"created_at":1796138643,"event":"TeamRunContent","team_id":"cirkelline",'
    '"team_name":"Cirkelline","run_id":"f0f2334e-62a2-433a-97c3-bf37761fe342","session_id":"s1","nested_depth":0,'
    '"content":"Hel","content_type":"str","reasoning_content":""}\n\n'
    'event: TeamRunCompleted\ndata: {"created_at":1796138643,"event":"TeamRunCompleted","team_id":"cirkelline",'
    '"run_id":"f0f2334e-62a2-433a-97c3-bf37761fe342","session_id":"s1","content":"Hello!","metrics":{}}\n\n'
)


def _paths() -> dict[str, Any]:
    run_failed = {
        "500": _error_response("The run failed inside the server (`error_type: internal`), or its answer was "
                               "refused by storage.", "RunFailed"),
        "502": _error_response("The model provider failed after retries (`error_type: provider_error`).",
                               "RunFailed"),
        "504": _error_response("The run passed its deadline, or no first token in time (`error_type: timeout`).",
                               "RunFailed"),
    }
    runs_429 = copy.deepcopy(E429)
    runs_429["description"] = ("Too many runs in progress (yours or the server's), or the provider rate-limited the "
                               "run and retries ran out (`RunFailed` with `error_type: rate_limited`).")
    runs_429["content"][JSON]["schema"] = {"anyOf": [ref("RateLimited"), ref("RunFailed")]}
    runs_503 = copy.deepcopy(E503)
    runs_503["description"] = ("The database is unavailable (`Retry-After`), or the run's answer could not be "
                               "saved (`RunFailed`).")
    runs_503["content"][JSON]["schema"] = {"anyOf": [ref("Error"), ref("RunFailed")]}
    token_errors = {
        "400": _error_response("A field is missing or malformed (`errors` per field).", "ValidationError"),
        "401": _error_response("Wrong credentials, or a bad, expired, used or revoked refresh token.",
                               example="No active account found with the given credentials",
                               headers=WWW_AUTHENTICATE),
        "405": copy.deepcopy(E405), "415": copy.deepcopy(E415), "503": copy.deepcopy(E503),
    }
    token_body = {
        JSON: {"schema": None},
        FORM: {"schema": None},
        MULTIPART: {"schema": None},
    }

    def token_request(schema: str, example: dict) -> dict:
        body = copy.deepcopy(token_body)
        body[JSON]["schema"] = ref(schema)
        body[FORM]["schema"] = ref(schema + "Form")
        body[MULTIPART]["schema"] = ref(schema + "Form")
        body[JSON]["example"] = example
        return {"required": True, "content": body}

    html_page = {"description": "An HTML page.", "content": {HTML: {"schema": STR}}}
    to_login = {"description": "Not logged in: a redirect to `/login/?next=...`.",
                "headers": {"Location": {"schema": STR}}}

    return {
        "/api/token/": {"post": _op(
            "Log in: username and password to an access and a refresh token", "tokens",
            {**_ok(ref("TokenPair")), **copy.deepcopy(token_errors),
             "429": _error_response("Too many failed logins for this username or from this address.",
                                    headers=RETRY_AFTER)},
            request_body=token_request("LoginRequest", {"username": "alice", "password": "alice-password-1"}),
            operation_id="token_obtain",
            description="Lifetimes: `CIRKELLINE_JWT_ACCESS_MINUTES` (60) and `CIRKELLINE_JWT_REFRESH_DAYS` (7). "
                        "Failed logins are throttled per username and per address (429 with `Retry-After`).")},
        "/api/token/refresh/": {"post": _op(
            "Rotate a refresh token: a new access and refresh token; the one sent is used up", "tokens",
            {**_ok(ref("TokenPair")), **copy.deepcopy(token_errors)},
            request_body=token_request("RefreshRequest", {"refresh": "<refresh token>"}),
            operation_id="token_refresh")},
        "/api/token/logout/": {"post": _op(
            "Log out: revoke a refresh token, or every token of the user", "tokens",
            {**_ok(ref("LogoutResponse"), example={"revoked": "token"}), **copy.deepcopy(token_errors)},
            request_body=token_request("LogoutRequest", {"refresh": "<refresh token>", "everywhere": False}),
            operation_id="token_logout")},
        "/health": {"get": _op("Liveness", "service", {**_ok(ref("Health")), **_errors(405)},
                               operation_id="health")},
        "/ready": {"get": _op(
            "Readiness: the database (and Redis when configured) answer", "service",
            {**_ok(ref("Ready"), example={"status": "ready", "checks": {"database": "ok", "redis": "ok"}}),
             "405": copy.deepcopy(E405),
             "503": {"description": "Something the service needs is down.",
                     "content": {JSON: {"schema": ref("NotReady")}}}},
            operation_id="ready")},
        "/metrics": {"get": _op(
            "Prometheus metrics (staff session, or the metrics bearer token `CIRKELLINE_METRICS_TOKEN`)", "service",
            {"200": {"description": "Prometheus text exposition format.",
                     "content": {"text/plain": {"schema": STR}}},
             "403": _error_response("Neither a staff session nor the metrics token.",
                                    example="Metrics need a staff session or the metrics bearer token."),
             "405": copy.deepcopy(E405)},
            security=[{"metricsToken": []}, COOKIE], operation_id="metrics")},
        "/config": {"get": _op("The service and its teams (AgentOS `ConfigResponse`)", "service",
                               {**_ok(ref("Config")), **_errors(405)}, operation_id="config")},
        "/openapi.json": {"get": _op("This document", "service",
                                     {**_ok({"type": "object"}), **_errors(405)}, operation_id="openapi")},
        "/docs": {"get": _op("This document as a browsable page, with the websocket protocol", "pages",
                             {"200": copy.deepcopy(html_page), **_errors(405)}, operation_id="docs")},
        "/teams": {"get": _op("The teams (AgentOS `TeamSummaryResponse`)", "teams",
                              {**_ok({"type": "array", "items": ref("TeamSummary")}), **_errors(401, 405, 503)},
                              security=READ_AUTH, operation_id="list_teams")},
        "/teams/{team_id}": {"get": _op(
            "A team with its members and the leader's instructions", "teams",
            {**_ok(ref("TeamDetail")), **_errors(401, 404, 405, 503)}, security=READ_AUTH,
            parameters=[TEAM_ID], operation_id="get_team")},
        "/teams/{team_id}/runs": {"post": _op(
            "Run the team on a message: an SSE stream of agno's events, or one JSON answer", "runs",
            {"200": {"description": "`stream=true` (default): `text/event-stream`, one frame per agno event "
                                    "(`event: <name>` and `data: <one line of JSON>`, see `SseEvent`), ending with "
                                    "exactly one terminal event (`TeamRunCompleted`, `TeamRunCancelled` or "
                                    "`TeamRunError`). `stream=false`: the run as JSON (a cancelled run has "
                                    "`status: CANCELLED`).",
                     "headers": {"Cache-Control": {"schema": {"const": "no-cache"}},
                                 "X-Accel-Buffering": {"schema": {"const": "no"}}},
                     "content": {SSE: {"schema": ref("SseFrame"), "example": SSE_EXAMPLE},
                                 JSON: {"schema": ref("TeamRunOutput")}}},
             **_errors(400, 401),
             "402": _error_response("Your monthly budget is spent: the run is refused before it starts.",
                                    example="Your monthly budget of 20.00 USD is spent; runs resume next month."),
             **_errors(403, 404, 405, 413, 415),
             "429": runs_429, "503": runs_503, **run_failed},
            security=WRITE_AUTH, parameters=[TEAM_ID], request_body=_run_request_body(), operation_id="create_run",
            description="Bodies: JSON, form-urlencoded or multipart (with `files`). Every field is sent once. "
                        "Everything is checked before the run starts: a refused request writes nothing. Closing "
                        "the stream cancels the run.")},
        "/teams/{team_id}/runs/{run_id}": {"get": _op(
            "A run of yours: live while running, the stored run afterwards", "runs",
            {**_ok({"anyOf": [ref("LiveRun"), ref("StoredRun")]}), **_errors(400, 401, 404, 405, 503)},
            security=READ_AUTH, parameters=[TEAM_ID, RUN_ID], operation_id="get_run")},
        "/teams/{team_id}/runs/{run_id}/cancel": {"post": _op(
            "Cancel a running run of yours; answers once it has stopped", "runs",
            {**_ok(ref("CancelResult"), example={"run_id": "f0f2334e-62a2-433a-97c3-bf37761fe342",
                                                 "status": "cancelled"}),
             **_errors(400, 401, 403, 404, 405),
             "409": _error_response("The run has already ended.", "RunAlreadyEnded"), **_errors(503)},
            security=WRITE_AUTH, parameters=[TEAM_ID, RUN_ID], operation_id="cancel_run")},
        "/sessions": {"get": _op(
            "Your sessions, a page at a time (AgentOS shape)", "sessions",
            {**_ok(ref("SessionsPage")), **_errors(400, 401, 405, 503)}, security=READ_AUTH,
            parameters=[
                _query("type", "Session type; only `team` sessions exist.",
                       {"type": "string", "enum": ["team", "agent", "workflow"], "default": "team"}),
                _query("limit", "Page size.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
                _query("page", "Page number.", {"type": "integer", "minimum": 1, "maximum": 1_000_000,
                                                "default": 1}),
                _query("sort_by", "Order by.", {"type": "string", "enum": ["created_at", "updated_at",
                                                                          "session_name"], "default": "created_at"}),
                _query("sort_order", "Direction.", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
                _query("session_name", "Only sessions whose name contains this.", TEXT),
                _query("component_id", "Only sessions of this team.", TEXT),
            ], operation_id="list_sessions")},
        "/sessions/{session_id}": {
            "get": _op("A session of yours with its chat history", "sessions",
                       {**_ok(ref("SessionDetail")), **_errors(400, 401, 404, 405, 503)}, security=READ_AUTH,
                       parameters=[SESSION_ID], operation_id="get_session"),
            "delete": _op("Delete a session of yours and its runs (usage rows stay)", "sessions",
                          {"204": {"description": "Deleted."}, **_errors(400, 401, 403, 404, 405, 503)},
                          security=WRITE_AUTH, parameters=[SESSION_ID], operation_id="delete_session"),
        },
        "/sessions/{session_id}/runs": {"get": _op(
            "Every run of a session of yours: team runs and member runs", "sessions",
            {**_ok({"type": "array", "items": ref("StoredRun")}), **_errors(400, 401, 404, 405, 503)},
            security=READ_AUTH, parameters=[SESSION_ID], operation_id="get_session_runs")},
        "/sessions/{session_id}/rename": {"post": _op(
            "Rename a session of yours", "sessions",
            {**_ok(ref("SessionDetail")), **_errors(400, 401, 403, 404, 405, 413, 503)},
            security=WRITE_AUTH, parameters=[SESSION_ID], operation_id="rename_session",
            request_body={"required": True, "content": {
                JSON: {"schema": ref("RenameRequest")},
                FORM: {"schema": ref("RenameRequestForm")},
                MULTIPART: {"schema": ref("RenameRequestForm")}}})},
        "/uploads": {"post": _op(
            "Upload files for a websocket `run` frame (ids expire after an hour)", "runs",
            {**_ok(ref("Uploads"), status=201, description="Stored; name the ids in a `run` frame's `files`."),
             **_errors(400, 401, 403, 405, 413, 415, 429, 503)},
            security=WRITE_AUTH, operation_id="upload_files",
            request_body={"required": True, "content": {MULTIPART: {
                "schema": ref("UploadRequest"),
                "encoding": {"files": {"contentType": FILE_TYPES}}}}})},
        "/usage": {"get": _op(
            "Your own usage: runs, tokens and cost per day and per model", "usage",
            {**_ok(ref("Usage")), **_errors(400, 401, 405, 503)}, security=READ_AUTH,
            parameters=[_query("from", "First UTC day, inclusive (default: 29 days before `to`).",
                               {**USAGE_DAY, "example": "2026-11-01"}),
                        _query("to", "Last UTC day, inclusive (default: today). At most 366 days after `from`.",
                               {**USAGE_DAY, "example": "2026-11-30"})],
            operation_id="get_usage",
            description="UTC days, both included; only your own usage (there is no user parameter). A bad or "
                        "reversed date, a range over 366 days, a parameter given twice or any other parameter is "
                        "a 400 naming it. Costs: docs/COST.md.")},
        # The pages (HTML; the browser's login cookie). Documented so the contract names every route.
        "/": {"get": _op("The chat page (a new chat)", "pages", {"200": copy.deepcopy(html_page),
                                                                 "302": copy.deepcopy(to_login)},
                         security=[COOKIE], operation_id="page_chat")},
        "/c/{session_id}": {"get": _op(
            "The chat page on a session of yours", "pages",
            {"200": copy.deepcopy(html_page), "302": copy.deepcopy(to_login)}, security=[COOKIE],
            parameters=[SESSION_ID], operation_id="page_chat_session")},
        "/login/": {
            "get": _op("The login form", "pages", {"200": copy.deepcopy(html_page)}, operation_id="page_login"),
            "post": _op("Log in (form with Django's CSRF token): sets the login cookie", "pages",
                        {"200": {"description": "The form again, saying what was wrong.", "content": {HTML: {
                            "schema": STR}}},
                         "302": {"description": "Logged in: to `next`.", "headers": {"Location": {"schema": STR}}},
                         "403": {"description": "CSRF check failed.", "content": {HTML: {"schema": STR}}}},
                        operation_id="page_login_submit",
                        request_body={"required": True, "content": {FORM: {"schema": _obj(
                            {"username": STR, "password": STR, "next": STR, "csrfmiddlewaretoken": STR},
                            ["username", "password", "csrfmiddlewaretoken"])}}}),
        },
        "/logout/": {"post": _op(
            "Log out of the pages (form with Django's CSRF token)", "pages",
            {"302": {"description": "Logged out: to `/login/`.", "headers": {"Location": {"schema": STR}}},
             "403": {"description": "CSRF check failed.", "content": {HTML: {"schema": STR}}}},
            security=[COOKIE_CSRF], operation_id="page_logout")},
    }


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
            {"name": "service", "description": "Health, readiness, metrics, configuration and this document."},
            {"name": "pages", "description": "The browser pages (HTML, login cookie)."},
        ],
        "security": [BEARER, COOKIE],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "An access token from `POST /api/token/`. A present but bad header is "
                                              "always a 401 (no fallback to the cookie)."},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sessionid",
                                  "description": "The pages' login cookie (`/login/`)."},
                "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                              "description": "Django's CSRF token (cookie `csrftoken`): required with the login "
                                             "cookie on POST and DELETE, else 403."},
                "metricsToken": {"type": "http", "scheme": "bearer",
                                 "description": "`CIRKELLINE_METRICS_TOKEN` (for `/metrics` only)."},
            },
        },
    }


@functools.cache
def document_json() -> bytes:
    """The document as compact JSON (encoded once per process)."""
    return json.dumps(document(), separators=(",", ":")).encode()
