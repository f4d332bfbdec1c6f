"""The OpenAPI document's building blocks: media types, JSON Schema shorthands, the repeated error
responses, bodies, pages, operation and parameter helpers (shared by every area's module of
chat.api.openapi), so each is spelled once."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings

from chat.errors import AuthError
from chat.runs.request import MEDIA_TYPES
from metrics.models import RunStatus

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
SSE = "text/event-stream"
HTML = "text/html"

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
DELEGATION_FAILURE_KINDS = ["announced_not_executed", "unknown_member", "empty_task", "member_error",
                            "member_empty_result", "member_stalled"]
RUN_ERROR_TYPES = ["provider_error", "timeout", "rate_limited", "internal", "worker_lost"]
# A run's status as its usage row says it (metrics.models.RunStatus: run_finished, cancel, a 409),
# and as agno / AgentOS say it (stored runs, stream=false answers).
USAGE_STATUSES = [status.value for status in RunStatus]
AGNO_STATUSES = ["PENDING", "RUNNING", "COMPLETED", "PAUSED", "CANCELLED", "ERROR"]

# Who may call: a bearer token, or the login cookie (plus the CSRF token for writes).
BEARER = {"bearerAuth": []}
COOKIE = {"sessionCookie": []}
COOKIE_CSRF = {"sessionCookie": [], "csrfToken": []}
READ_AUTH = [BEARER, COOKIE]
WRITE_AUTH = [BEARER, COOKIE_CSRF]
NO_AUTH: list = []


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict, required: list[str] | None = None, *, extra: bool = True, **more: Any) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if not extra:
        schema["additionalProperties"] = False
    schema.update(more)
    return schema


def body(properties: dict, required: list[str] | None = None, **more: Any) -> dict:
    """A JSON request body's object (obj) whose other keys are taken and ignored: any JSON without NUL."""
    return obj(properties, required, propertyNames=TEXT, additionalProperties=JSON_VALUE, **more)


STR = {"type": "string"}
# What a client sends: any string but one with a NUL character (a 400 in every field).
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
# ... with something besides whitespace (fields the server strips first).
NONBLANK = {"type": "string", "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"}
# Any JSON a client sends in a JSON body: no NUL character in a string or a key, at any depth (the
# server reads a body whole and refuses one anywhere: 400). `JSON_VALUE` is the recursive component.
JSON_VALUE = ref("JsonValue")
NO_NUL_JSON = {"pattern": TEXT["pattern"], "propertyNames": TEXT, "additionalProperties": JSON_VALUE,
               "items": JSON_VALUE}
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
# The `meta` of a page in AgentOS' shape (sessions, memories, knowledge).
PAGE_META = obj({"page": INT, "limit": INT, "total_pages": INT, "total_count": INT, "search_time_ms": NUM},
                ["page", "limit", "total_pages", "total_count"])


def form_of(schema: dict, *, files: bool = False) -> dict:
    """The form (urlencoded or multipart) variant of a JSON body's schema: each field once, as text (a
    repeated field is a 400), JSON objects as JSON text; with `files`, the repeatable file field."""
    properties = {}
    for name, prop in schema["properties"].items():
        if isinstance(prop.get("type"), list) and "object" in prop["type"]:
            prop = {**TEXT, "contentMediaType": JSON, "contentSchema": {**NO_NUL_JSON, "type": "object"},
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


def any_body(schema: str, example: Any = None) -> dict:
    """A required body as JSON (`schema`), form-urlencoded or multipart (`<schema>Form`: form_of)."""
    json_body: dict[str, Any] = {"schema": ref(schema)}
    if example is not None:
        json_body["example"] = example
    return {"required": True, "content": {JSON: json_body, FORM: {"schema": ref(schema + "Form")},
                                          MULTIPART: {"schema": ref(schema + "Form")}}}


# --- responses ---------------------------------------------------------------------------------

def error_response(description: str, schema: str = "Error", example: str | None = None,
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

E400 = error_response("The request is malformed: a field, parameter or id is wrong (the sentence names it).",
                       example="'message' is required and must be a non-empty string.")
E401 = error_response("No valid credentials: none, a bad or expired token, a revoked token, an inactive or deleted "
                       "user.", example=AuthError.detail, headers=WWW_AUTHENTICATE)
E403 = error_response("A cookie-authenticated write without a valid CSRF token, or a `user_id` naming someone "
                       "else.", example="CSRF check failed: CSRF token missing.")
E404 = error_response("Not there, or not yours (never told apart).", example="Session not found.")
E405 = error_response("The route does not take this method.", example="Method PUT is not allowed here.",
                       headers=ALLOW)
E413 = error_response("The message, a file, the number of files or the body is too large. A body over its route's "
                       "limit is refused before it is read, with `limit` (bytes): `CIRKELLINE_MAX_API_BODY_BYTES` "
                       "(64 KiB) for small JSON/form bodies such as a rename, `CIRKELLINE_MAX_RUN_BODY_BYTES` "
                       "(512 KiB) for a run's JSON/form body, the files' limits plus that for a multipart body.",
                       "TooLarge", example="'message' is too long: the limit is 32000 characters.")
E415 = error_response("Unsupported content type or file type.",
                       example="Unsupported content type 'text/plain': send JSON, form-urlencoded or multipart.")
E429 = error_response("Too many requests: runs in progress (yours or the server's), pending uploads, or failed "
                       "logins. `Retry-After` says when to retry.", "RateLimited", headers=RETRY_AFTER)
E503 = error_response("The database is unavailable; retry after `Retry-After` seconds.",
                       example="The database is unavailable right now; please retry shortly.", headers=RETRY_AFTER)


_ERRORS = {400: E400, 401: E401, 403: E403, 404: E404, 405: E405, 413: E413, 415: E415, 429: E429, 503: E503}


def errors(*codes: int) -> dict:
    return {str(code): copy.deepcopy(_ERRORS[code]) for code in codes}


def error_as(code: int, description: str) -> dict:
    """The usual error response of `code` (a copy) with a route's own description."""
    response = copy.deepcopy(_ERRORS[code])
    response["description"] = description
    return response


def no_content(description: str = "Deleted.") -> dict:
    return {"204": {"description": description}}


def ok(schema: dict, description: str = "OK", example: Any = None, status: int = 200) -> dict:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {str(status): {"description": description, "content": {JSON: content}}}


def op(summary: str, tag: str, responses: dict, *, security: list | None = None, description: str = "",
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


def path_param(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def query(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


TEAM_ID = path_param("team_id", "The team: `cirkelline` (`GET /teams` lists them). Unknown: 404.",
                      {"type": "string", "example": "cirkelline"})
SESSION_ID = path_param("session_id", "A session id of yours (an ill-formed id is a 400; another user's, or "
                         "one whose first run is still live, a 404).",
                         {"type": "string", "pattern": SESSION_ID_PATTERN, "example": "s-2026-12-01-a"})
PAGE = [query("limit", "Page size.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
        query("page", "Page number.", {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1})]
RUN_ID = path_param("run_id", "A run id of yours (the `run_id` of `TeamRunStarted`).",
                     {"type": "string", "pattern": SESSION_ID_PATTERN,
                      "example": "f0f2334e-62a2-433a-97c3-bf37761fe342"})
