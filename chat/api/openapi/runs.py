"""The OpenAPI document's run routes: start a team run (an SSE stream or one answer), look it up,
cancel, continue or resume it, upload files for a websocket run; and their bodies' schemas.

The SSE events a run streams are described apart (chat.api.openapi.events).
"""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings

from chat.api.parsing import EVENT_INDEX_MAX

from .common import (
    AGNO_STATUSES,
    ANY,
    BOOLISH,
    DATE_TIME,
    FILE_TYPES,
    FILES,
    FORM,
    INT,
    JSON,
    MULTIPART,
    NO_NUL_JSON,
    NONBLANK,
    NULLABLE_ARRAY,
    NULLABLE_OBJ,
    NULLABLE_STR,
    OBJ,
    READ_AUTH,
    RUN_ID,
    SESSION_ID_PATTERN,
    SSE,
    STR,
    TEAM_ID,
    TEXT,
    USAGE_STATUSES,
    WRITE_AUTH,
    any_body,
    body,
    error_as,
    error_response,
    errors,
    form_of,
    obj,
    ok,
    op,
    query,
    ref,
)

_NULLABLE_TEXT = {**TEXT, "type": ["string", "null"]}


def _run_request_body() -> dict:
    return {"required": True, "content": {
        JSON: {"schema": ref("RunRequest"), "examples": {
            "streamed": {"value": {"message": "Please research the history of Copenhagen"}},
            "answer": {"value": {"message": "What is 2+2?", "stream": False}}}},
        FORM: {"schema": ref("RunRequestForm")},
        MULTIPART: {"schema": ref("RunRequestMultipart"), "encoding": {"files": {"contentType": FILE_TYPES}}},
    }}


RESUME_DESCRIPTION = (
    "Three cases, as AgentOS: the run is live (a `catch_up` notice and the events you missed, a `subscribed` "
    "notice, then its live events up to its terminal event); it ended and its events are still kept "
    "(`CIRKELLINE_EVENT_LOG_TTL`, 10 minutes by default: a `replay` notice and the events after "
    "`last_event_index`); only the database has it (a `replay` notice and the stored run as its terminal "
    "event, `TeamRunCompleted` with the whole answer, under its original `event_index`). A run answered with "
    "`stream=false` has no events: one `replay` notice with `total_events: 0`. Any worker answers (with "
    "`REDIS_URL`). Only your own runs (another user's, another team's, another session's: 404).")
# An event index a client sends (chat.api.parsing.event_index): -1 or up to 15 digits; as text, empty is absent.
EVENT_INDEX = {"minimum": -1, "maximum": EVENT_INDEX_MAX}
EVENT_INDEX_TEXT = {"type": "string", "pattern": r"^(-1|[0-9]{1,15})?$"}
LAST_EVENT_ID = {"name": "Last-Event-ID", "in": "header", "required": False,
                 "description": "The standard SSE reconnect header: the `id:` of the last frame received; "
                                "used when `last_event_index` is not given.",
                 "schema": EVENT_INDEX_TEXT}
RESUME_EXAMPLE = (
    'event: catch_up\ndata: {"event": "catch_up", "run_id": "f0f2334e-62a2-433a-97c3-bf37761fe342", "status": '
    '"running", "missed_events": 1, "current_event_count": 9, "message": "Catching up on 1 missed events."}\n\n'
    'id: 8\nevent: TeamRunContent\ndata: {"created_at":1796138643,"event":"TeamRunContent","team_id":"cirkelline",'
    '"run_id":"f0f2334e-62a2-433a-97c3-bf37761fe342","session_id":"s1","content":"lo","event_index":8}\n\n'
    'event: subscribed\ndata: {"event": "subscribed", "run_id": "f0f2334e-62a2-433a-97c3-bf37761fe342", "status": '
    '"running", "current_event_count": 9, "message": "Subscribed to team run. Receiving live events."}\n\n'
)
SSE_EXAMPLE = (
    'id: 0\nevent: TeamRunStarted\ndata: {"created_at":1796138642,"event":"TeamRunStarted","team_id":"cirkelline",'
    '"team_name":"Cirkelline","run_id":"f0f2334e-62a2-433a-97c3-bf37761fe342","session_id":"s1","nested_depth":0,'
    '"model":"gemini-2.5-flash","model_provider":"Google","event_index":0}\n\n'
    'id: 3\nevent: TeamRunContent\ndata: {"created_at":1796138643,"event":"TeamRunContent","team_id":"cirkelline",'
    '"team_name":"Cirkelline","run_id":"f0f2334e-62a2-433a-97c3-bf37761fe342","session_id":"s1","nested_depth":0,'
    '"content":"Hel","content_type":"str","reasoning_content":"","event_index":3}\n\n'
    'id: 4\nevent: TeamRunCompleted\ndata: {"created_at":1796138643,"event":"TeamRunCompleted","team_id":"cirkelline",'
    '"run_id":"f0f2334e-62a2-433a-97c3-bf37761fe342","session_id":"s1","content":"Hello!","metrics":{},'
    '"event_index":4}\n\n'
)




# The headers of a streamed answer: no cache, and no buffering in nginx.
STREAM_HEADERS = {"Cache-Control": {"schema": {"const": "no-cache"}}, "X-Accel-Buffering": {"schema": {"const": "no"}}}


def run_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "RunRequest": body({
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
            "session_state": {**NO_NUL_JSON, "type": ["object", "string", "null"],
                              "description": "A JSON object (a JSON string in forms)."},
            "dependencies": {**NO_NUL_JSON, "type": ["object", "string", "null"]},
            "metadata": {**NO_NUL_JSON, "type": ["object", "string", "null"]},
            "user_id": {**TEXT, "type": ["string", "integer", "null"],
                        "description": "Optional; if sent, your own user id or username (else "
                        "403). Never chooses the user."},
            "background": {"enum": [False, "false", "0", "no", "off", "", None],
                           "description": "Background runs are not offered: `true` is a 400."},
        }, ["message"], example={"message": "What is 2+2?", "stream": False}),
        "TeamRunOutput": obj({
            "run_id": STR, "team_id": STR, "team_name": STR, "session_id": STR, "user_id": NULLABLE_STR,
            "content": ANY, "content_type": STR, "model": NULLABLE_STR, "model_provider": NULLABLE_STR,
            "created_at": INT, "status": {"type": "string", "enum": AGNO_STATUSES,
                                          "description": "`COMPLETED`, `CANCELLED`, or `PAUSED` "
                                          "(then `requirements` says what the run asks its user)."},
            "requirements": {"type": ["array", "null"], "items": ref("RunRequirement")},
            "metrics": OBJ, "messages": {"type": "array"}, "member_responses": {"type": "array"}, "input": OBJ,
        }, ["run_id", "session_id", "status", "content"], description="agno's `TeamRunOutput.to_dict()`."),
        "StoredRun": obj({
            "run_id": STR, "parent_run_id": NULLABLE_STR, "user_id": NULLABLE_STR,
            "status": {"type": ["string", "null"], "enum": [*AGNO_STATUSES, None]},
            "run_input": NULLABLE_STR, "content": ANY, "run_response_format": {"enum": ["text", "json"]},
            "reasoning_content": STR, "metrics": OBJ, "messages": NULLABLE_ARRAY, "tools": NULLABLE_ARRAY,
            "events": NULLABLE_ARRAY, "created_at": DATE_TIME, "session_state": NULLABLE_OBJ,
            "images": NULLABLE_ARRAY, "videos": NULLABLE_ARRAY, "audio": NULLABLE_ARRAY, "files": NULLABLE_ARRAY,
            "team_id": NULLABLE_STR, "session_id": NULLABLE_STR, "agent_id": STR, "agent_session_id": NULLABLE_STR,
            "requirements": {"type": ["array", "null"], "items": ref("RunRequirement"),
                             "description": "A paused team run's: what it asks you."},
        }, ["run_id", "status"], description="AgentOS `TeamRunSchema` (team runs, with `team_id`) or `RunSchema` "
                                             "(member runs, with `agent_id` and `parent_run_id`)."),
        "LiveRun": obj({"run_id": STR, "team_id": STR, "session_id": STR, "user_id": STR,
                         "status": {"const": "RUNNING"}, "content": STR, "created_at": STR},
                        ["run_id", "status"], description="A run still in progress."),
        "CancelResult": obj({"run_id": STR, "status": {"type": "string", "enum": USAGE_STATUSES,
                                                        "example": "cancelled"}},
                             ["run_id", "status"]),
        "Uploads": obj({
            "files": {"type": "array", "items": obj({"id": STR, "name": STR,
                                                      "kind": {"enum": ["image", "audio", "video", "document"]},
                                                      "mime_type": STR, "size": INT},
                                                     ["id", "name", "kind", "mime_type", "size"])},
            "expires_in": {"type": "integer", "description": "Seconds an unused upload is kept."}},
            ["files", "expires_in"]),
        "RunRequirement": body({
            "id": TEXT,
            "tool_execution": body({"tool_call_id": _NULLABLE_TEXT, "tool_name": TEXT,
                                    "tool_args": {**NO_NUL_JSON, "type": ["object", "null"]},
                                    "requires_confirmation": {"type": ["boolean", "null"]},
                                    "requires_user_input": {"type": ["boolean", "null"]},
                                    "confirmed": {"type": ["boolean", "null"]}}),
            "confirmation": {"type": ["boolean", "null"],
                             "description": "Your answer to a tool that needs confirmation."},
            "confirmation_note": {**_NULLABLE_TEXT, "maxLength": 2000},
            "user_input_schema": {"type": ["array", "null"], "items": body({
                "name": TEXT, "field_type": TEXT, "description": _NULLABLE_TEXT,
                "value": {**NO_NUL_JSON, "type": ["string", "number", "boolean", "null"]}}, ["name"])},
            "values": {**NO_NUL_JSON, "type": "object", "description": "Cirkelline's shorthand: field name -> value."},
        }, description="What a paused run asks (agno's `RunRequirement.to_dict()`). To answer, send it back with "
                       "`confirmation` (true/false) or the `value` of each field of `user_input_schema`; only the "
                       "answers are read, matched to the run's own requirements by `id` (or `tool_call_id`)."),
        "ContinueRequest": body({
            "requirements": {"type": "array", "items": ref("RunRequirement"), "minItems": 1,
                             "description": "The paused run's requirements, answered (a JSON array; as JSON text in "
                                            "forms). Unanswered ones keep the run paused."},
            "session_id": {"type": "string", "pattern": SESSION_ID_PATTERN,
                           "description": "The run's session (optional; another session's: 404)."},
            "user_id": {**TEXT, "type": ["string", "integer", "null"],
                        "description": "Optional; if sent, your own user id or username (else 403)."},
            "stream": {**BOOLISH, "default": True},
            "stream_events": {**BOOLISH, "default": True},
            "background": {"enum": [False, "false", "0", "no", "off", "", None],
                           "description": "Background runs are not offered: `true` is a 400."},
        }, ["requirements"], example={"requirements": [{"id": "60335ce9-67bf-4b21-8b92-771b2db16b25",
                                                        "confirmation": True}], "stream": False}),
        "ResumeRequest": body({
            "last_event_index": {**EVENT_INDEX_TEXT, **EVENT_INDEX, "type": ["integer", "string"],
                                 "description": "The last `event_index` you received (-1 or absent: from the "
                                                "start). Without it, the `Last-Event-ID` header is read."},
            "session_id": {"type": "string", "pattern": SESSION_ID_PATTERN,
                           "description": "The run's session (optional; another session's: 404)."}},
            example={"last_event_index": "41", "session_id": "s-2026-12-01-a"}),
    }
    for name in ("RunRequest", "ContinueRequest", "ResumeRequest"):
        schemas[name + "Form"] = form_of(schemas[name])
    schemas["ContinueRequestForm"]["properties"]["requirements"] = {
        **TEXT, "contentMediaType": JSON, "contentSchema": {"type": "array", "items": ref("RunRequirement")},
        "description": "A JSON array, as JSON text."}
    # `files` only as file parts (multipart): a text field of that name is a 400.
    schemas["RunRequestForm"]["propertyNames"] = {**TEXT, "not": {"const": "files"}}
    schemas["RunRequestMultipart"] = form_of(schemas["RunRequest"], files=True)
    # Files only: any other field or part is a 400.
    schemas["UploadRequest"] = obj({"files": FILES}, ["files"], extra=False)
    return schemas


def run_paths() -> dict[str, Any]:
    run_failed = {
        "500": error_response("The run failed inside the server (`error_type: internal`), or its answer was "
                               "refused by storage.", "RunFailed"),
        "502": error_response("The model provider failed after retries (`error_type: provider_error`).",
                               "RunFailed"),
        "504": error_response("The run passed its deadline, or no first token in time (`error_type: timeout`).",
                               "RunFailed"),
    }
    runs_429 = error_as(429, "Too many runs in progress (yours or the server's), or the provider rate-limited "
                             "the run and retries ran out (`RunFailed` with `error_type: rate_limited`).")
    runs_429["content"][JSON]["schema"] = {"anyOf": [ref("RateLimited"), ref("RunFailed")]}
    cancel_503 = error_as(503, "The database is unavailable, or the run is in progress in another server process "
                               "that this one cannot reach (cancels across processes need Redis) or that did not "
                               "answer within 10 s while its lease still runs; retry after `Retry-After` seconds.")
    runs_503 = error_as(503, "The database is unavailable (`Retry-After`); or this server process is shutting down "
                             "(draining on SIGTERM: it starts no new run; `Retry-After` and `retry_after` say when "
                             "to retry, which a proxy sends to another process); or the run's answer could not be "
                             "saved (`RunFailed`).")
    runs_503["content"][JSON]["schema"] = {"anyOf": [ref("Error"), ref("RateLimited"), ref("RunFailed")]}
    runs_503["content"][JSON]["examples"] = {"draining": {"value": {
        "detail": "This server is restarting and accepts no new runs; please retry in a moment (another server "
                  "will take it).", "retry_after": 2, "request_id": "5f0c3a1e9b2d4c6a8e7f9a0b1c2d3e4f"}}}
    resume_responses = {
        "200": {"description": "`text/event-stream`: AgentOS's notices (`ResumeNotice`) and the run's events "
                               "after `last_event_index` (`SseFrame`s, each with its `event_index`), live until "
                               "the run's terminal event when it is still running.",
                "headers": copy.deepcopy(STREAM_HEADERS),
                "content": {SSE: {"schema": {"anyOf": [ref("SseFrame"), ref("ResumeNotice")]},
                                  "example": RESUME_EXAMPLE}}},
        **errors(400, 401, 403, 404, 405, 413, 503)}

    return {
        "/teams/{team_id}/runs": {"post": op(
            "Run the team on a message: an SSE stream of agno's events, or one JSON answer", "runs",
            {"200": {"description": "`stream=true` (default): `text/event-stream`, one frame per agno event "
                                    "(`event: <name>` and `data: <one line of JSON>`, see `SseEvent`), ending with "
                                    "exactly one terminal event (`TeamRunCompleted`, `TeamRunCancelled`, "
                                    "`TeamRunError`, or `TeamRunPaused` when it asks you something: continue it "
                                    "with `.../continue`). `stream=false`: the run as JSON (a cancelled run has "
                                    "`status: CANCELLED`, a paused one `PAUSED` and its `requirements`).",
                     "headers": copy.deepcopy(STREAM_HEADERS),
                     "content": {SSE: {"schema": ref("SseFrame"), "example": SSE_EXAMPLE},
                                 JSON: {"schema": ref("TeamRunOutput")}}},
             **errors(400, 401),
             "402": error_response("Your monthly budget is spent: the run is refused before it starts.",
                                    example="Your monthly budget of 20.00 USD is spent; runs resume next month."),
             **errors(403, 404, 405, 413, 415),
             "429": runs_429, "503": runs_503, **run_failed},
            security=WRITE_AUTH, parameters=[TEAM_ID], request_body=_run_request_body(), operation_id="create_run",
            description="Bodies: JSON, form-urlencoded or multipart (with `files`). Every field is sent once. "
                        "Everything is checked before the run starts: a refused request writes nothing. Every "
                        "streamed event carries its `event_index` (and the frame its `id:`). Closing the stream "
                        "leaves the run going to its end (it is stored, and the stream can be resumed), unless "
                        "the server runs with `CIRKELLINE_ON_DISCONNECT=cancel`; cancel it to stop it.")},
        "/teams/{team_id}/runs/{run_id}": {"get": op(
            "A run of yours: live while running, the stored run afterwards", "runs",
            {**ok({"anyOf": [ref("LiveRun"), ref("StoredRun")]}), **errors(400, 401, 404, 405, 503)},
            security=READ_AUTH, parameters=[TEAM_ID, RUN_ID], operation_id="get_run",
            description="Any server process answers: the process running the run with its partial answer "
                        "(`LiveRun`), any other with the run as stored from its start on (`StoredRun`, "
                        "`status: RUNNING`, the message and no answer yet).")},
        "/teams/{team_id}/runs/{run_id}/cancel": {"post": op(
            "Cancel a running run of yours; answers once it has stopped", "runs",
            {**ok(ref("CancelResult"), example={"run_id": "f0f2334e-62a2-433a-97c3-bf37761fe342",
                                                 "status": "cancelled"}),
             **errors(400, 401, 403, 404, 405),
             "409": error_response("The run has already ended.", "RunAlreadyEnded"), "503": cancel_503},
            security=WRITE_AUTH, parameters=[TEAM_ID, RUN_ID], operation_id="cancel_run",
            description="`status` is the run's final status: `cancelled`; `error` for a run whose server "
                        "process had died (its lease expired), which the cancel closes at once as "
                        "`worker_lost`. A paused run (waiting for your answer) is ended as `cancelled` too, "
                        "billed for its part before the pause.")},
        "/teams/{team_id}/runs/{run_id}/continue": {"post": op(
            "Continue a paused run of yours with your answers (AgentOS): an SSE stream or one JSON answer", "runs",
            {"200": {"description": "As `POST /teams/{team_id}/runs`: `stream=true` (default), the continued "
                                    "part's events (from `TeamRunContinued`, numbered after the paused part's) "
                                    "to its terminal event (which may be `TeamRunPaused` again); `stream=false`, "
                                    "the run as JSON.",
                     "headers": copy.deepcopy(STREAM_HEADERS),
                     "content": {SSE: {"schema": ref("SseFrame")}, JSON: {"schema": ref("TeamRunOutput")}}},
             **errors(400, 401),
             "402": error_response("Your monthly budget is spent: the continuation is refused before it starts.",
                                    example="Your monthly budget of 20.00 USD is spent; runs resume next month."),
             **errors(403, 404, 405),
             "409": error_response("The run is not waiting for an answer: `status` is `running`, how it ended, or "
                                   "`expired` (paused longer than `CIRKELLINE_PAUSE_TTL_SECONDS`).", "RunAlreadyEnded"),
             **errors(413, 415),
             "429": copy.deepcopy(runs_429), "503": copy.deepcopy(runs_503), **copy.deepcopy(run_failed)},
            security=WRITE_AUTH, parameters=[TEAM_ID, RUN_ID], operation_id="continue_run",
            request_body=any_body("ContinueRequest"),
            description="Only your own paused runs (another user's, another team's, another session's: 404), on any "
                        "worker. The continuation is the same run: the same `run_id` and usage row, billed for both "
                        "parts (docs/COST.md). It is admitted and budget-checked like a new run.")},
        "/teams/{team_id}/runs/{run_id}/resume": {
            "post": op("Resume a run's stream after `last_event_index`, on any worker (AgentOS)", "runs",
                       resume_responses, security=WRITE_AUTH, parameters=[TEAM_ID, RUN_ID, LAST_EVENT_ID],
                       operation_id="resume_run", description=RESUME_DESCRIPTION,
                       request_body={"required": False, "content": {
                           FORM: {"schema": ref("ResumeRequestForm")}, MULTIPART: {"schema": ref("ResumeRequestForm")},
                           JSON: {"schema": ref("ResumeRequest")}}}),
            "get": op("Resume a run's stream (the same, for EventSource clients: query parameters)", "runs",
                      copy.deepcopy(resume_responses), security=READ_AUTH,
                      parameters=[TEAM_ID, RUN_ID, LAST_EVENT_ID,
                                  query("last_event_index", "The last `event_index` you received (-1: none).",
                                        {**EVENT_INDEX_TEXT, **EVENT_INDEX, "type": ["integer", "string"]}),
                                  query("session_id", "The run's session (optional).",
                                        {"type": "string", "pattern": SESSION_ID_PATTERN})],
                      operation_id="resume_run_get", description=RESUME_DESCRIPTION)},
        "/uploads": {"post": op(
            "Upload files for a websocket `run` frame (ids expire after an hour)", "runs",
            {**ok(ref("Uploads"), status=201, description="Stored; name the ids in a `run` frame's `files`."),
             **errors(400, 401, 403, 405, 413, 415, 429, 503)},
            security=WRITE_AUTH, operation_id="upload_files",
            request_body={"required": True, "content": {MULTIPART: {
                "schema": ref("UploadRequest"),
                "encoding": {"files": {"contentType": FILE_TYPES}}}}})},
    }
