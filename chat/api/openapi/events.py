"""The OpenAPI document's SSE event shapes: the `data:` JSON of every frame a run's stream carries.

agno's team and member events as Cirkelline streams them (each with its `event_index`),
Cirkelline's own events, and the notices of a resumed stream. They are the schema of the
`text/event-stream` answers (chat.api.openapi.runs) and the websocket's `events` frames carry the
same JSON; tests/api/test_openapi.py checks them against a real stream. Kept apart from the run
routes because the events change with agno, the routes with the API.
"""

from __future__ import annotations

from typing import Any

from .common import (
    ANY,
    DELEGATION_FAILURE_KINDS,
    INT,
    JSON,
    NULLABLE_ARRAY,
    NULLABLE_OBJ,
    NULLABLE_STR,
    OBJ,
    RUN_ERROR_TYPES,
    STR,
    obj,
    ref,
)


def event_schemas() -> dict[str, Any]:
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
    return {
        **events,
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
    }
