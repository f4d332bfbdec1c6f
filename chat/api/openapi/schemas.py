"""The OpenAPI document's component schemas: every request and response body, the SSE event shapes."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from metrics.models import UsageKind

from .common import (
    AGNO_STATUSES,
    ANY,
    BOOL,
    BOOLISH,
    DATE_TIME,
    DELEGATION_FAILURE_KINDS,
    FILES,
    INT,
    JSON,
    NONBLANK,
    NULLABLE_ARRAY,
    NULLABLE_OBJ,
    NULLABLE_STR,
    NUM,
    OBJ,
    RUN_ERROR_TYPES,
    SCALAR,
    SESSION_ID_PATTERN,
    STR,
    TEXT,
    USAGE_FIGURES,
    USAGE_STATUSES,
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
    event_index = {"type": "integer", "minimum": 0,
                   "description": "The event's index in its run (from 0, increasing; it skips where waiting text "
                                  "deltas were merged into one event). Resume after it: "
                                  "`POST /teams/{team_id}/runs/{run_id}/resume`."}
    team_event_base = {
        "created_at": {"type": "integer", "description": "Unix seconds."}, "event_index": event_index,
        "event": STR, "team_id": STR, "team_name": STR, "run_id": STR, "parent_run_id": NULLABLE_STR,
        "session_id": STR, "nested_depth": INT, "content": ANY,
    }
    member_event_base = {
        "created_at": INT, "event_index": event_index, "event": STR, "agent_id": STR, "agent_name": STR, "run_id": STR,
        "parent_run_id": {"type": "string", "description": "The team run that delegated to this member."},
        "session_id": STR, "nested_depth": INT, "content": ANY, "tools": NULLABLE_ARRAY,
    }
    tool = obj({"tool_call_id": NULLABLE_STR, "tool_name": STR, "tool_args": NULLABLE_OBJ, "result": ANY,
                 "child_run_id": {"type": ["string", "null"], "description": "A delegation's member run."}},
                ["tool_name"])
    model_request_completed = {
        "model": STR, "model_provider": STR, "input_tokens": INT, "output_tokens": INT, "total_tokens": INT,
        "time_to_first_token": {"type": ["number", "null"]}, "reasoning_tokens": INT, "cache_read_tokens": INT,
        "cache_write_tokens": INT,
    }

    def team_event(name: str, description: str, **extra: Any) -> dict:
        return obj({**team_event_base, **extra, "event": {"const": name}}, ["event", "run_id", "created_at"],
                    description=description)

    def member_event(name: str, description: str, **extra: Any) -> dict:
        return obj({**member_event_base, **extra, "event": {"const": name}},
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
        "TeamRunPaused": team_event(
            "TeamRunPaused", "Terminal for now: the run asks its user (a tool that needs confirmation, or "
            "`get_user_input` fields). Answer each of `requirements` and send them back to "
            "`POST /teams/{team_id}/runs/{run_id}/continue`.", tools=NULLABLE_ARRAY,
            requirements={"type": "array", "items": ref("RunRequirement")}),
        "TeamRunContinued": team_event("TeamRunContinued", "A paused run goes on with its user's answers (the first "
                                       "event of a continuation)."),
        "TeamRunError": team_event("TeamRunError", "Terminal: the run failed; `content` is a sentence for a person.",
                                   content=STR, error_type={"type": "string", "enum": RUN_ERROR_TYPES},
                                   error_id=NULLABLE_STR,
                                   additional_data=obj({"retry_after": {"type": ["number", "null"]}},
                                                        type=["object", "null"])),
        "TeamRunContentDiscarded": team_event(
            "TeamRunContentDiscarded", "Cirkelline's own: a leader model call failed mid-answer and is retried; drop "
            "the last `discarded_characters` of the leader's streamed text.", discarded_characters=INT),
        "DelegationFailureDetected": obj({
            "event": {"const": "DelegationFailureDetected"}, "created_at": INT, "event_index": event_index,
            "run_id": STR, "session_id": STR, "team_id": STR,
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
        "RunRequest": obj({
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
        "SessionSummary": obj({
            "session_id": STR, "session_name": STR, "session_state": NULLABLE_OBJ, "created_at": DATE_TIME,
            "updated_at": DATE_TIME, "session_type": STR, "user_id": NULLABLE_STR, "agent_id": NULLABLE_STR,
            "team_id": NULLABLE_STR, "workflow_id": NULLABLE_STR, "session_summary": ANY, "metrics": NULLABLE_OBJ,
            "total_tokens": {"type": ["integer", "null"]}, "metadata": NULLABLE_OBJ}, ["session_id", "session_name"]),
        "SessionsPage": obj({
            "data": {"type": "array", "items": ref("SessionSummary")},
            "meta": obj({"page": INT, "limit": INT, "total_pages": INT, "total_count": INT, "search_time_ms": NUM},
                         ["page", "limit", "total_pages", "total_count"])}, ["data", "meta"]),
        "SessionDetail": obj({
            "session_id": STR, "session_name": STR, "user_id": NULLABLE_STR, "team_id": NULLABLE_STR,
            "session_summary": ANY, "session_state": NULLABLE_OBJ, "metrics": OBJ, "team_data": NULLABLE_OBJ,
            "metadata": NULLABLE_OBJ, "chat_history": {"type": "array", "items": OBJ}, "created_at": DATE_TIME,
            "updated_at": DATE_TIME, "total_tokens": {"type": ["integer", "null"]}},
            ["session_id", "session_name", "chat_history"]),
        "RenameRequest": obj({"session_name": {**NONBLANK, "maxLength": 255}},
                              ["session_name"], example={"session_name": "Trip to Aarhus"}),
        "Uploads": obj({
            "files": {"type": "array", "items": obj({"id": STR, "name": STR,
                                                      "kind": {"enum": ["image", "audio", "video", "document"]},
                                                      "mime_type": STR, "size": INT},
                                                     ["id", "name", "kind", "mime_type", "size"])},
            "expires_in": {"type": "integer", "description": "Seconds an unused upload is kept."}},
            ["files", "expires_in"]),
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
        "SseFrame": obj({"id": {"type": "string", "pattern": r"^\d+$",
                                "description": "The event's `event_index` (so a standard "
                                                                 "`Last-Event-ID` names it); absent on the "
                                                                 "resume notices."},
                         "event": {"type": "string", "description": "The event's name (as `data.event`)."},
                          "data": {"type": "string", "contentMediaType": JSON, "contentSchema": ref("SseEvent")}},
                         ["event", "data"], description="One frame of the stream (OpenAPI 3.1: the schema of a "
                                                        "`text/event-stream` describes each event)."),
        "SseEvent": {
            "description": "The `data:` JSON of one SSE frame (its `event:` line repeats `event`). Events not "
                           "listed here (agno has more: reasoning, memory, hooks) may arrive: `OtherEvent`; "
                           "skip the ones you do not know.",
            "oneOf": [ref(name) for name in events] + [ref("OtherEvent")],
        },
        "OtherEvent": obj({"event": {"type": "string", "not": {"enum": list(events)}}, "created_at": INT,
                            "run_id": STR, "event_index": event_index}, ["event"]),
        "ResumeNotice": obj({
            "event": {"enum": ["catch_up", "subscribed", "replay"]}, "run_id": STR,
            "status": {"type": "string", "description": "`running` (catch_up, subscribed), else the run's status "
                                                          "as AgentOS names it (`COMPLETED`, `ERROR`, `CANCELLED`, "
                                                          "`RUNNING` for a run answered with stream=false)."},
            "missed_events": INT, "current_event_count": INT, "total_events": INT, "total_buffered": INT,
            "last_event_index_requested": INT, "message": STR},
            ["event", "run_id", "status"],
            description="AgentOS's notices on a resumed stream (`event: <name>`, no `id:`): `catch_up` before the "
                        "events missed of a live run, `subscribed` before its live events, `replay` before the "
                        "events of an ended run (`total_events` of them)."),
        "RunRequirement": obj({
            "id": STR,
            "tool_execution": obj({"tool_call_id": NULLABLE_STR, "tool_name": STR, "tool_args": NULLABLE_OBJ,
                                   "requires_confirmation": {"type": ["boolean", "null"]},
                                   "requires_user_input": {"type": ["boolean", "null"]},
                                   "confirmed": {"type": ["boolean", "null"]}}),
            "confirmation": {"type": ["boolean", "null"],
                             "description": "Your answer to a tool that needs confirmation."},
            "confirmation_note": {"type": ["string", "null"], "maxLength": 2000},
            "user_input_schema": {"type": ["array", "null"], "items": obj({
                "name": STR, "field_type": STR, "description": NULLABLE_STR,
                "value": {"type": ["string", "number", "boolean", "null"]}}, ["name"])},
            "values": {"type": "object", "description": "Cirkelline's shorthand: field name -> value."},
        }, description="What a paused run asks (agno's `RunRequirement.to_dict()`). To answer, send it back with "
                       "`confirmation` (true/false) or the `value` of each field of `user_input_schema`; only the "
                       "answers are read, matched to the run's own requirements by `id` (or `tool_call_id`)."),
        "ContinueRequest": obj({
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
        "ResumeRequest": obj({
            "last_event_index": {"type": ["integer", "string"], "pattern": r"^-?\d+$",
                                 "description": "The last `event_index` you received (-1 or absent: from the "
                                                "start). Without it, the `Last-Event-ID` header is read."},
            "session_id": {"type": "string", "pattern": SESSION_ID_PATTERN,
                           "description": "The run's session (optional; another session's: 404)."}},
            example={"last_event_index": "41", "session_id": "s-2026-12-01-a"}),
    }
    schemas.update(events)
    for name in ("LoginRequest", "RefreshRequest", "LogoutRequest", "RenameRequest", "RunRequest", "ContinueRequest",
                 "ResumeRequest"):
        schemas[name + "Form"] = _form_of(schemas[name])
    schemas["ContinueRequestForm"]["properties"]["requirements"] = {
        **TEXT, "contentMediaType": JSON, "contentSchema": {"type": "array", "items": ref("RunRequirement")},
        "description": "A JSON array, as JSON text."}
    # `files` only as file parts (multipart): a text field of that name is a 400.
    schemas["RunRequestForm"]["propertyNames"] = {**TEXT, "not": {"const": "files"}}
    schemas["RunRequestMultipart"] = _form_of(schemas["RunRequest"], files=True)
    schemas["UploadRequest"] = _form_of(obj({}, ["files"]), files=True)
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
