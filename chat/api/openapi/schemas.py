"""The OpenAPI document's component schemas of no area of their own: errors, tokens, the service's
answers, teams, sessions and usage (the areas' schemas are in their modules: runs, events, personal,
feedback, knowledge)."""

from __future__ import annotations

from typing import Any

from metrics.models import UsageKind

from .common import (
    ANY,
    BOOL,
    DATE_TIME,
    INT,
    NO_NUL_JSON,
    NONBLANK,
    NULLABLE_OBJ,
    NULLABLE_STR,
    NUM,
    OBJ,
    PAGE_META,
    RUN_ERROR_TYPES,
    STR,
    TEXT,
    USAGE_FIGURES,
    USAGE_STATUSES,
    body,
    form_of,
    obj,
    ref,
)


def component_schemas() -> dict[str, Any]:
    usage_row = obj({
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
    schemas: dict[str, Any] = {
        "JsonValue": {**NO_NUL_JSON, "description": "Any JSON value without a NUL character in a string or key."},
        "Error": obj({"detail": {"type": "string", "description": "A sentence for a person."},
                       "request_id": {"type": "string", "description": "The response's `X-Request-ID`, to quote."}},
                      ["detail"], description="Every error: `detail`, plus fields the error names."),
        "ValidationError": obj({"detail": STR, "request_id": STR,
                                 "errors": {"type": "object", "description": "Per field, DRF's messages (absent "
                                            "when the body itself could not be parsed)."}},
                                ["detail"]),
        "TooLarge": obj({"detail": STR, "request_id": STR,
                          "limit": {"type": "integer", "description": "The route's body limit in bytes (present "
                                    "when the whole body was too large)."}},
                         ["detail"]),
        "RateLimited": obj({"detail": STR, "request_id": STR,
                             "retry_after": {"type": "number", "description": "Seconds (runs and uploads)."}},
                            ["detail"]),
        "RunFailed": obj({"detail": STR, "request_id": STR,
                           "error_type": {"type": "string", "enum": RUN_ERROR_TYPES},
                           "run_id": STR, "session_id": STR, "retry_after": NUM},
                          ["detail", "error_type", "run_id", "session_id"],
                          description="A non-streamed run that failed."),
        "RunAlreadyEnded": obj({"detail": STR, "request_id": STR,
                                 "status": {"type": "string", "enum": USAGE_STATUSES,
                                            "description": "How the run ended (or, for a continue, "
                                                           "`running` / `expired`)."}},
                                ["detail", "status"]),
        # The token routes (DRF's parsers, not chat.payload's) ignore other keys whatever they hold.
        "LoginRequest": obj({"username": NONBLANK, "password": {**TEXT, "minLength": 1}},
                             ["username", "password"],
                             example={"username": "alice", "password": "alice-password-1"}),
        "TokenPair": obj({"access": {"type": "string", "description": "JWT, HS256; send as Bearer."},
                           "refresh": {"type": "string", "description": "JWT; single use (rotates)."}},
                          ["access", "refresh"], extra=False),
        "RefreshRequest": obj({"refresh": NONBLANK}, ["refresh"]),
        "LogoutRequest": obj({"refresh": NONBLANK, "everywhere": {"type": "boolean", "default": False}}, ["refresh"]),
        "LogoutResponse": obj({"revoked": {"type": "string", "enum": ["token", "all"]}}, ["revoked"], extra=False),
        "Health": obj({"status": {"const": "ok"}, "instantiated_at": {"type": "string", "format": "date-time"}},
                       ["status", "instantiated_at"]),
        "Ready": obj({"status": {"const": "ready"},
                       "checks": {"type": "object", "additionalProperties": STR}}, ["status", "checks"]),
        "NotReady": obj({"detail": STR, "request_id": STR, "status": {"enum": ["unavailable", "draining"]},
                          "checks": {"type": "object", "additionalProperties": STR}}, ["detail", "status", "checks"]),
        "ModelSummary": obj({"id": NULLABLE_STR, "provider": NULLABLE_STR, "name": NULLABLE_STR},
                             type=["object", "null"]),
        "TeamSummary": obj({"id": STR, "name": NULLABLE_STR, "description": NULLABLE_STR, "db_id": NULLABLE_STR,
                             "mode": NULLABLE_STR, "model": ref("ModelSummary"), "metadata": NULLABLE_OBJ,
                             "sandboxed": BOOL}, ["id", "name"]),
        "TeamDetail": {"allOf": [ref("TeamSummary"), obj({
            "role": NULLABLE_STR, "instructions": {"type": "array", "items": STR},
            "members": {"type": "array", "items": obj({"id": STR, "name": STR, "role": NULLABLE_STR,
                                                        "model": ref("ModelSummary")}, ["id", "name"])},
            "session_table": STR}, ["members"])]},
        "Config": obj({
            "status": STR, "service": STR, "version": STR, "os_id": STR, "name": STR, "description": STR,
            "available_models": {"type": "array", "items": obj({"id": STR, "provider": STR})},
            "os_database": STR, "databases": {"type": "array", "items": STR}, "agents": {"type": "array"},
            "teams": {"type": "array", "items": ref("TeamSummary")}, "workflows": {"type": "array"},
            "interfaces": {"type": "array"}}, ["status", "os_id", "teams"]),
        "SessionSummary": obj({
            "session_id": STR, "session_name": STR, "session_state": NULLABLE_OBJ, "created_at": DATE_TIME,
            "updated_at": DATE_TIME, "session_type": STR, "user_id": NULLABLE_STR, "agent_id": NULLABLE_STR,
            "team_id": NULLABLE_STR, "workflow_id": NULLABLE_STR, "session_summary": ANY, "metrics": NULLABLE_OBJ,
            "total_tokens": {"type": ["integer", "null"]}, "metadata": NULLABLE_OBJ}, ["session_id", "session_name"]),
        "SessionsPage": obj({"data": {"type": "array", "items": ref("SessionSummary")}, "meta": PAGE_META},
                            ["data", "meta"]),
        "SessionDetail": obj({
            "session_id": STR, "session_name": STR, "user_id": NULLABLE_STR, "team_id": NULLABLE_STR,
            "session_summary": ANY, "session_state": NULLABLE_OBJ, "metrics": OBJ, "team_data": NULLABLE_OBJ,
            "metadata": NULLABLE_OBJ, "chat_history": {"type": "array", "items": OBJ}, "created_at": DATE_TIME,
            "updated_at": DATE_TIME, "total_tokens": {"type": ["integer", "null"]}},
            ["session_id", "session_name", "chat_history"]),
        "RenameRequest": body({"session_name": {**NONBLANK, "maxLength": 255}},
                              ["session_name"], example={"session_name": "Trip to Aarhus"}),
        "UsageFigures": usage_row,
        "Usage": obj({
            "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
            "currency": {"const": "USD"}, "totals": ref("UsageFigures"),
            "by_kind": {"type": "array", "description": (
                "The totals split by what was billed: `chat` (runs) and `naming` (the calls that named your "
                "sessions after their first answer); kinds without rows are left out. `totals`, `by_day` and "
                "`by_model` count both."),
                "items": {"allOf": [obj({"kind": {"enum": list(UsageKind.values)}}, ["kind"]), ref("UsageFigures")]}},
            "by_day": {"type": "array", "items": {"allOf": [ref("UsageFigures"),
                                                            obj({"day": {"type": "string", "format": "date"}},
                                                                 ["day"])]}},
            "by_model": {"type": "array", "items": {"allOf": [
                obj({"provider": STR, "model": STR, "calls": INT}, ["provider", "model", "calls"]),
                obj({k: v for k, v in usage_row["properties"].items() if k != "runs"})]}},
        }, ["from", "to", "currency", "totals", "by_kind", "by_day", "by_model"]),
    }
    for name in ("LoginRequest", "RefreshRequest", "LogoutRequest", "RenameRequest"):
        schemas[name + "Form"] = form_of(schemas[name])
    return schemas
