"""The OpenAPI document's routes of no area of their own: tokens, the service's own routes (health,
readiness, metrics, configuration, this document), teams, sessions, usage and the pages; their
parameters and answers (the areas' routes are in their modules: runs, personal, feedback, knowledge)."""

from __future__ import annotations

import copy
from typing import Any

from .common import (
    COOKIE,
    COOKIE_CSRF,
    E405,
    FORM,
    HTML,
    JSON,
    PAGE,
    READ_AUTH,
    RETRY_AFTER,
    SESSION_ID,
    SESSION_ID_PATTERN,
    STR,
    TEAM_ID,
    TEXT,
    USAGE_DAY,
    WRITE_AUTH,
    WWW_AUTHENTICATE,
    any_body,
    error_response,
    errors,
    no_content,
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


def all_paths() -> dict[str, Any]:
    token_errors = {
        "400": error_response("A field is missing or malformed (`errors` per field).", "ValidationError"),
        "401": error_response("Wrong credentials, or a bad, expired, used or revoked refresh token.",
                               example="No active account found with the given credentials",
                               headers=WWW_AUTHENTICATE),
        **errors(405, 415, 503),
    }

    html_page = {"description": "An HTML page.", "content": {HTML: {"schema": STR}}}
    to_login = {"description": "Not logged in: a redirect to `/login/?next=...`.",
                "headers": {"Location": {"schema": STR}}}

    return {
        "/api/token/": {"post": op(
            "Log in: username and password to an access and a refresh token", "tokens",
            {**ok(ref("TokenPair")), **copy.deepcopy(token_errors),
             "429": error_response("Too many failed logins for this username or from this address.",
                                    headers=RETRY_AFTER)},
            request_body=any_body("LoginRequest", {"username": "alice", "password": "alice-password-1"}),
            operation_id="token_obtain",
            description="Lifetimes: `CIRKELLINE_JWT_ACCESS_MINUTES` (60) and `CIRKELLINE_JWT_REFRESH_DAYS` (7). "
                        "Failed logins are throttled per username and per address (429 with `Retry-After`).")},
        "/api/token/refresh/": {"post": op(
            "Rotate a refresh token: a new access and refresh token; the one sent is used up", "tokens",
            {**ok(ref("TokenPair")), **copy.deepcopy(token_errors)},
            request_body=any_body("RefreshRequest", {"refresh": "<refresh token>"}),
            operation_id="token_refresh")},
        "/api/token/logout/": {"post": op(
            "Log out: revoke a refresh token, or every token of the user", "tokens",
            {**ok(ref("LogoutResponse"), example={"revoked": "token"}), **copy.deepcopy(token_errors)},
            request_body=any_body("LogoutRequest", {"refresh": "<refresh token>", "everywhere": False}),
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
        "/sessions": {"get": op(
            "Your sessions, a page at a time (AgentOS shape)", "sessions",
            {**ok(ref("SessionsPage")), **errors(400, 401, 405, 503)}, security=READ_AUTH,
            parameters=[
                query("type", "Session type; only `team` sessions exist.",
                       {"type": "string", "enum": ["team", "agent", "workflow"], "default": "team"}),
                *PAGE,
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
                          {**no_content(), **errors(400, 401, 403, 404, 405, 503)},
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
            request_body=any_body("RenameRequest"))},
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
