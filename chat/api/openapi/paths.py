"""The OpenAPI document's paths: every HTTP route, its parameters, bodies and answers."""

from __future__ import annotations

import copy
from typing import Any

from .common import (
    COOKIE,
    COOKIE_CSRF,
    E405,
    E415,
    E429,
    E503,
    FILE_TYPES,
    FORM,
    HTML,
    JSON,
    MULTIPART,
    READ_AUTH,
    RETRY_AFTER,
    RUN_ID,
    SESSION_ID,
    SESSION_ID_PATTERN,
    SSE,
    STR,
    TEAM_ID,
    TEXT,
    USAGE_DAY,
    WRITE_AUTH,
    WWW_AUTHENTICATE,
    error_response,
    errors,
    obj,
    ok,
    op,
    query,
    ref,
)

SESSION_RUNS_DESCRIPTION = (
    "Without `limit` and `before`: every ended run of the session in stored order (oldest first), AgentOS's answer. "
    "With either: a page. A page holds the `limit` latest ended team runs stored before the team run `before` (the "
    "latest ones without it), each with its member runs, in the same order. Runs are stored as they are admitted, so "
    "the order is the order the messages were sent; a run still in progress is on no page. `X-Next-Before` (and a "
    "`Link` header, `rel=\"next\"`) gives the cursor of the page before this one; neither is sent on the oldest "
    "page.")


def _session_runs_ok() -> dict:
    answer = ok({"type": "array", "items": ref("StoredRun")})
    answer["200"]["headers"] = {
        "X-Next-Before": {"description": "Paged answers only, and only when older runs exist: the `before` of the "
                                         "page before this one (the id of this page's oldest team run).",
                          "schema": {"type": "string", "pattern": SESSION_ID_PATTERN}},
        "Link": {"description": 'Paged answers only, with `X-Next-Before`: `</sessions/{id}/runs?limit=..&before=..>; '
                                'rel="next"` (RFC 8288).', "schema": STR},
    }
    return answer


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
LAST_EVENT_ID = {"name": "Last-Event-ID", "in": "header", "required": False,
                 "description": "The standard SSE reconnect header: the `id:` of the last frame received; "
                                "used when `last_event_index` is not given.",
                 "schema": {"type": "string", "pattern": r"^-?\d+$"}}
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


def all_paths() -> dict[str, Any]:
    run_failed = {
        "500": error_response("The run failed inside the server (`error_type: internal`), or its answer was "
                               "refused by storage.", "RunFailed"),
        "502": error_response("The model provider failed after retries (`error_type: provider_error`).",
                               "RunFailed"),
        "504": error_response("The run passed its deadline, or no first token in time (`error_type: timeout`).",
                               "RunFailed"),
    }
    runs_429 = copy.deepcopy(E429)
    runs_429["description"] = ("Too many runs in progress (yours or the server's), or the provider rate-limited the "
                               "run and retries ran out (`RunFailed` with `error_type: rate_limited`).")
    runs_429["content"][JSON]["schema"] = {"anyOf": [ref("RateLimited"), ref("RunFailed")]}
    cancel_503 = copy.deepcopy(E503)
    cancel_503["description"] = ("The database is unavailable, or the run is in progress in another server process "
                                 "that this one cannot reach (cancels across processes need Redis) or that did not "
                                 "answer within 10 s while its lease still runs; retry after `Retry-After` seconds.")
    runs_503 = copy.deepcopy(E503)
    runs_503["description"] = ("The database is unavailable (`Retry-After`); or this server process is shutting "
                               "down (draining on SIGTERM: it starts no new run; `Retry-After` and `retry_after` "
                               "say when to retry, which a proxy sends to another process); or the run's answer "
                               "could not be saved (`RunFailed`).")
    runs_503["content"][JSON]["schema"] = {"anyOf": [ref("Error"), ref("RateLimited"), ref("RunFailed")]}
    runs_503["content"][JSON]["examples"] = {"draining": {"value": {
        "detail": "This server is restarting and accepts no new runs; please retry in a moment (another server "
                  "will take it).", "retry_after": 2, "request_id": "5f0c3a1e9b2d4c6a8e7f9a0b1c2d3e4f"}}}
    token_errors = {
        "400": error_response("A field is missing or malformed (`errors` per field).", "ValidationError"),
        "401": error_response("Wrong credentials, or a bad, expired, used or revoked refresh token.",
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

    resume_responses = {
        "200": {"description": "`text/event-stream`: AgentOS's notices (`ResumeNotice`) and the run's events "
                               "after `last_event_index` (`SseFrame`s, each with its `event_index`), live until "
                               "the run's terminal event when it is still running.",
                "headers": {"Cache-Control": {"schema": {"const": "no-cache"}},
                            "X-Accel-Buffering": {"schema": {"const": "no"}}},
                "content": {SSE: {"schema": {"anyOf": [ref("SseFrame"), ref("ResumeNotice")]},
                                  "example": RESUME_EXAMPLE}}},
        **errors(400, 401, 403, 404, 405, 413, 503)}
    html_page = {"description": "An HTML page.", "content": {HTML: {"schema": STR}}}
    to_login = {"description": "Not logged in: a redirect to `/login/?next=...`.",
                "headers": {"Location": {"schema": STR}}}

    return {
        "/api/token/": {"post": op(
            "Log in: username and password to an access and a refresh token", "tokens",
            {**ok(ref("TokenPair")), **copy.deepcopy(token_errors),
             "429": error_response("Too many failed logins for this username or from this address.",
                                    headers=RETRY_AFTER)},
            request_body=token_request("LoginRequest", {"username": "alice", "password": "alice-password-1"}),
            operation_id="token_obtain",
            description="Lifetimes: `CIRKELLINE_JWT_ACCESS_MINUTES` (60) and `CIRKELLINE_JWT_REFRESH_DAYS` (7). "
                        "Failed logins are throttled per username and per address (429 with `Retry-After`).")},
        "/api/token/refresh/": {"post": op(
            "Rotate a refresh token: a new access and refresh token; the one sent is used up", "tokens",
            {**ok(ref("TokenPair")), **copy.deepcopy(token_errors)},
            request_body=token_request("RefreshRequest", {"refresh": "<refresh token>"}),
            operation_id="token_refresh")},
        "/api/token/logout/": {"post": op(
            "Log out: revoke a refresh token, or every token of the user", "tokens",
            {**ok(ref("LogoutResponse"), example={"revoked": "token"}), **copy.deepcopy(token_errors)},
            request_body=token_request("LogoutRequest", {"refresh": "<refresh token>", "everywhere": False}),
            operation_id="token_logout")},
        "/health": {"get": op("Liveness", "service", {**ok(ref("Health")), **errors(405)},
                               operation_id="health")},
        "/ready": {"get": op(
            "Readiness: the database (and Redis when configured) answer", "service",
            {**ok(ref("Ready"), example={"status": "ready", "checks": {"database": "ok", "redis": "ok"}}),
             "405": copy.deepcopy(E405),
             "503": {"description": "Something the service needs is down, or this process is shutting down "
                                    "(`status: draining`: it finishes its runs and takes no new work).",
                     "content": {JSON: {"schema": ref("NotReady")}}}},
            operation_id="ready")},
        "/metrics": {"get": op(
            "Prometheus metrics (staff session, or the metrics bearer token `CIRKELLINE_METRICS_TOKEN`)", "service",
            {"200": {"description": "Prometheus text exposition format.",
                     "content": {"text/plain": {"schema": STR}}},
             "403": error_response("Neither a staff session nor the metrics token.",
                                    example="Metrics need a staff session or the metrics bearer token."),
             "405": copy.deepcopy(E405)},
            security=[{"metricsToken": []}, COOKIE], operation_id="metrics")},
        "/config": {"get": op("The service and its teams (AgentOS `ConfigResponse`)", "service",
                               {**ok(ref("Config")), **errors(405)}, operation_id="config")},
        "/openapi.json": {"get": op("This document", "service",
                                     {**ok({"type": "object"}), **errors(405)}, operation_id="openapi")},
        "/docs": {"get": op("This document as a browsable page, with the websocket protocol", "pages",
                             {"200": copy.deepcopy(html_page), **errors(405)}, operation_id="docs")},
        "/teams": {"get": op("The teams (AgentOS `TeamSummaryResponse`)", "teams",
                              {**ok({"type": "array", "items": ref("TeamSummary")}), **errors(401, 405, 503)},
                              security=READ_AUTH, operation_id="list_teams")},
        "/teams/{team_id}": {"get": op(
            "A team with its members and the leader's instructions", "teams",
            {**ok(ref("TeamDetail")), **errors(401, 404, 405, 503)}, security=READ_AUTH,
            parameters=[TEAM_ID], operation_id="get_team")},
        "/teams/{team_id}/runs": {"post": op(
            "Run the team on a message: an SSE stream of agno's events, or one JSON answer", "runs",
            {"200": {"description": "`stream=true` (default): `text/event-stream`, one frame per agno event "
                                    "(`event: <name>` and `data: <one line of JSON>`, see `SseEvent`), ending with "
                                    "exactly one terminal event (`TeamRunCompleted`, `TeamRunCancelled`, "
                                    "`TeamRunError`, or `TeamRunPaused` when it asks you something: continue it "
                                    "with `.../continue`). `stream=false`: the run as JSON (a cancelled run has "
                                    "`status: CANCELLED`, a paused one `PAUSED` and its `requirements`).",
                     "headers": {"Cache-Control": {"schema": {"const": "no-cache"}},
                                 "X-Accel-Buffering": {"schema": {"const": "no"}}},
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
                     "headers": {"Cache-Control": {"schema": {"const": "no-cache"}},
                                 "X-Accel-Buffering": {"schema": {"const": "no"}}},
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
            request_body={"required": True, "content": {
                JSON: {"schema": ref("ContinueRequest")}, FORM: {"schema": ref("ContinueRequestForm")},
                MULTIPART: {"schema": ref("ContinueRequestForm")}}},
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
                                        {"type": "integer", "minimum": -1}),
                                  query("session_id", "The run's session (optional).",
                                        {"type": "string", "pattern": SESSION_ID_PATTERN})],
                      operation_id="resume_run_get", description=RESUME_DESCRIPTION)},
        "/sessions": {"get": op(
            "Your sessions, a page at a time (AgentOS shape)", "sessions",
            {**ok(ref("SessionsPage")), **errors(400, 401, 405, 503)}, security=READ_AUTH,
            parameters=[
                query("type", "Session type; only `team` sessions exist.",
                       {"type": "string", "enum": ["team", "agent", "workflow"], "default": "team"}),
                query("limit", "Page size.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
                query("page", "Page number.", {"type": "integer", "minimum": 1, "maximum": 1_000_000,
                                                "default": 1}),
                query("sort_by", "Order by.", {"type": "string", "enum": ["created_at", "updated_at",
                                                                          "session_name"], "default": "created_at"}),
                query("sort_order", "Direction.", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
                query("session_name", "Only sessions whose name contains this.", TEXT),
                query("component_id", "Only sessions of this team.", TEXT),
            ], operation_id="list_sessions")},
        "/sessions/{session_id}": {
            "get": op("A session of yours with its chat history", "sessions",
                       {**ok(ref("SessionDetail")), **errors(400, 401, 404, 405, 503)}, security=READ_AUTH,
                       parameters=[SESSION_ID], operation_id="get_session"),
            "delete": op("Delete a session of yours and its runs (usage rows stay)", "sessions",
                          {"204": {"description": "Deleted."}, **errors(400, 401, 403, 404, 405, 503)},
                          security=WRITE_AUTH, parameters=[SESSION_ID], operation_id="delete_session"),
        },
        "/sessions/{session_id}/runs": {"get": op(
            "The runs of a session of yours (team runs and member runs): all of them, or a page", "sessions",
            {**_session_runs_ok(), **errors(400, 401, 404, 405, 503)},
            security=READ_AUTH, description=SESSION_RUNS_DESCRIPTION, operation_id="get_session_runs",
            parameters=[
                SESSION_ID,
                query("limit", "A page of this many team runs (with their member runs), the latest first. Given "
                               "alone or with `before`, the answer is a page; without both, every run.",
                      {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
                query("before", "The page before this team run (the `X-Next-Before` of the page after it): its "
                                "id must be a team run of this session, else 400.",
                      {"type": "string", "pattern": SESSION_ID_PATTERN,
                       "example": "f0f2334e-62a2-433a-97c3-bf37761fe342"}),
            ])},
        "/sessions/{session_id}/rename": {"post": op(
            "Rename a session of yours", "sessions",
            {**ok(ref("SessionDetail")), **errors(400, 401, 403, 404, 405, 413, 503)},
            security=WRITE_AUTH, parameters=[SESSION_ID], operation_id="rename_session",
            request_body={"required": True, "content": {
                JSON: {"schema": ref("RenameRequest")},
                FORM: {"schema": ref("RenameRequestForm")},
                MULTIPART: {"schema": ref("RenameRequestForm")}}})},
        "/uploads": {"post": op(
            "Upload files for a websocket `run` frame (ids expire after an hour)", "runs",
            {**ok(ref("Uploads"), status=201, description="Stored; name the ids in a `run` frame's `files`."),
             **errors(400, 401, 403, 405, 413, 415, 429, 503)},
            security=WRITE_AUTH, operation_id="upload_files",
            request_body={"required": True, "content": {MULTIPART: {
                "schema": ref("UploadRequest"),
                "encoding": {"files": {"contentType": FILE_TYPES}}}}})},
        "/usage": {"get": op(
            "Your own usage: runs, tokens and cost per kind, per day and per model", "usage",
            {**ok(ref("Usage")), **errors(400, 401, 405, 503)}, security=READ_AUTH,
            parameters=[query("from", "First UTC day, inclusive (default: 29 days before `to`).",
                               {**USAGE_DAY, "example": "2026-11-01"}),
                        query("to", "Last UTC day, inclusive (default: today). At most 366 days after `from`.",
                               {**USAGE_DAY, "example": "2026-11-30"})],
            operation_id="get_usage",
            description="UTC days, both included; only your own usage (there is no user parameter). A bad or "
                        "reversed date, a range over 366 days, a parameter given twice or any other parameter is "
                        "a 400 naming it. The calls that named your sessions count with your runs (`by_kind` shows "
                        "them apart). Costs: docs/COST.md.")},
        # The pages (HTML; the browser's login cookie). Documented so the contract names every route.
        "/": {"get": op("The chat page (a new chat)", "pages", {"200": copy.deepcopy(html_page),
                                                                 "302": copy.deepcopy(to_login)},
                         security=[COOKIE], operation_id="page_chat")},
        "/c/{session_id}": {"get": op(
            "The chat page on a session of yours", "pages",
            {"200": copy.deepcopy(html_page), "302": copy.deepcopy(to_login)}, security=[COOKIE],
            parameters=[SESSION_ID], operation_id="page_chat_session")},
        "/login/": {
            "get": op("The login form", "pages", {"200": copy.deepcopy(html_page)}, operation_id="page_login"),
            "post": op("Log in (form with Django's CSRF token): sets the login cookie", "pages",
                        {"200": {"description": "The form again, saying what was wrong.", "content": {HTML: {
                            "schema": STR}}},
                         "302": {"description": "Logged in: to `next`.", "headers": {"Location": {"schema": STR}}},
                         "403": {"description": "CSRF check failed.", "content": {HTML: {"schema": STR}}}},
                        operation_id="page_login_submit",
                        request_body={"required": True, "content": {FORM: {"schema": obj(
                            {"username": STR, "password": STR, "next": STR, "csrfmiddlewaretoken": STR},
                            ["username", "password", "csrfmiddlewaretoken"])}}}),
        },
        "/logout/": {"post": op(
            "Log out of the pages (form with Django's CSRF token)", "pages",
            {"302": {"description": "Logged out: to `/login/`.", "headers": {"Location": {"schema": STR}}},
             "403": {"description": "CSRF check failed.", "content": {HTML: {"schema": STR}}}},
            security=[COOKIE_CSRF], operation_id="page_logout")},
    }
