"""The OpenAPI document's personal routes: the caller's profile and memories (AgentOS' memory
routes), and their bodies' schemas."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings

from chat.api.memories import DELETE_IDS_MAX
from chat.personal.memories import MEMORY_MAX, SORT_FIELDS, TOPIC_MAX, TOPICS_MAX
from chat.personal.models import DISPLAY_NAME_MAX, timezones

from .common import (
    BOOL,
    DATE_TIME,
    INT,
    JSON,
    NULLABLE_STR,
    PAGE,
    PAGE_META,
    READ_AUTH,
    SESSION_ID_PATTERN,
    STR,
    TEXT,
    WRITE_AUTH,
    error_as,
    error_response,
    errors,
    no_content,
    obj,
    ok,
    op,
    path_param,
    query,
    ref,
)

PROFILE_EXAMPLE = {"display_name": "Alice", "timezone": "Europe/Copenhagen",
                   "custom_instructions": "Answer briefly. I am a nurse; skip the basics of medicine.",
                   "memories_enabled": True, "updated_at": "2026-12-01T09:30:00Z"}


def _profile_fields() -> dict[str, Any]:
    return {
        "display_name": {"type": "string", "maxLength": DISPLAY_NAME_MAX, "pattern": r"^[^\u0000-\u001f]*$",
                         "description": "What Cirkelline calls you (empty: your username). Stripped."},
        "timezone": {"type": "string", "enum": sorted(timezones()),
                     "description": "An IANA timezone name: your local date and time in each run's prompt."},
        "custom_instructions": {
            "type": "string", "maxLength": settings.CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX,
            "pattern": r"^[^\u0000-\u0008\u000b-\u001f]*$",
            "description": "How you want to be answered (at most `CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX` characters, "
                           "stripped). Given to the team as your preferences, after its own rules."},
        "memories_enabled": {**BOOL, "description": "Whether Cirkelline may remember things you tell it (off for "
                                                    "new users). Off keeps stored memories; it only stops using "
                                                    "and adding them."},
    }


MEMORY_EXAMPLE = {"memory_id": "f9361a69-2997-40c7-ae4e-a5861d434047", "memory": "Has a sister called Ida.",
                  "topics": ["family"], "agent_id": None, "team_id": None, "user_id": "7",
                  "updated_at": "2026-12-01T09:30:00Z"}
# Text a person sends: no control characters but new lines and tabs, something besides white space.
_LINES = r"^[^\u0000-\u0008\u000b-\u001f]*[^\s\u0000-\u001f][^\u0000-\u0008\u000b-\u001f]*$"
_TOPIC = {"type": "string", "minLength": 1, "maxLength": TOPIC_MAX,
          "pattern": r"^[^\u0000-\u001f]*[^\s\u0000-\u001f][^\u0000-\u001f]*$"}
_USER_ID = {**TEXT, "type": ["string", "integer", "null"],
            "description": "Yours (your user id or username) or absent: anyone else's is a 403."}


def _memory_schemas() -> dict[str, Any]:
    return {
        "Memory": obj({
            "memory_id": STR, "memory": STR,
            "topics": {"type": ["array", "null"], "items": STR, "description": "Lower case, each once."},
            "agent_id": NULLABLE_STR, "team_id": NULLABLE_STR, "user_id": NULLABLE_STR,
            "updated_at": {**DATE_TIME, "description": "Last change (whole seconds, UTC)."},
        }, ["memory_id", "memory", "topics", "agent_id", "team_id", "user_id", "updated_at"],
            description="AgentOS' `UserMemorySchema`."),
        "MemoriesPage": obj({"data": {"type": "array", "items": ref("Memory")}, "meta": PAGE_META},
                            ["data", "meta"]),
        "MemoryWrite": obj({
            "memory": {"type": "string", "maxLength": MEMORY_MAX, "pattern": _LINES,
                       "description": f"The memory (at most {MEMORY_MAX} characters, else 413; stripped)."},
            "topics": {"type": ["array", "null"], "maxItems": TOPICS_MAX, "items": _TOPIC,
                       "description": "Topics (stored stripped, lower case, each once)."},
            "user_id": _USER_ID,
        }, ["memory"], extra=False, description="AgentOS' `UserMemoryCreateSchema` (POST, and PATCH: text and "
                                                "topics replaced)."),
        "MemoriesDelete": {"oneOf": [
            obj({"memory_ids": {"type": "array", "minItems": 1, "maxItems": DELETE_IDS_MAX, "items": TEXT},
                 "user_id": _USER_ID}, ["memory_ids"], extra=False,
                description="AgentOS' `DeleteMemoriesRequest`: those of the ids that are yours are deleted."),
            obj({"all": {"const": True}, "user_id": _USER_ID}, ["all"], extra=False,
                description="Cirkelline's addition: every memory of yours."),
        ]},
        "MemoryStatsPage": obj({"data": {"type": "array", "maxItems": 1, "items": obj({
            "user_id": STR, "total_memories": INT, "last_memory_updated_at": DATE_TIME},
            ["user_id", "total_memories", "last_memory_updated_at"])}, "meta": PAGE_META}, ["data", "meta"],
            description="AgentOS' paged `UserStatsSchema`: your own row only (none without memories)."),
    }


def personal_schemas() -> dict[str, Any]:
    fields = _profile_fields()
    return {
        **_memory_schemas(),
        "Profile": obj({**fields, "updated_at": {**DATE_TIME, "description": "Last change; null: never changed "
                                                                             "(the defaults)."}},
                       [*fields, "updated_at"], extra=False),
        "ProfileChanges": obj(fields, extra=False, minProperties=0,
                              description="Any of the fields; only those sent change. Unknown fields are a 400."),
    }


def _memory_paths(unsupported: dict) -> dict[str, Any]:
    common = [query("user_id", "Yours, or absent (anyone else's: 403).", _USER_ID),
              query("db_id", "Accepted and ignored (AgentOS': there is one memory store).", TEXT),
              query("table", "Accepted and ignored (AgentOS').", TEXT)]
    memory_id = path_param("memory_id", "A memory id of yours (another user's is a 404, as an unknown one).",
                           {"type": "string", "pattern": SESSION_ID_PATTERN,
                            "example": "f9361a69-2997-40c7-ae4e-a5861d434047"})
    write = {"required": True, "content": {JSON: {"schema": ref("MemoryWrite"),
                                                  "example": {"memory": "Has a sister called Ida.",
                                                              "topics": ["family"]}}}}
    too_long = error_response("The memory, or the list of ids, is too long.",
                              example=f"'memory' is too long: the limit is {MEMORY_MAX} characters.")
    full = error_response("You keep `CIRKELLINE_MEMORIES_MAX` memories already: delete some first.",
                          example="You have 500 memories, the most Cirkelline keeps: delete some before adding more.")
    return {
        "/memories": {
            "get": op("Your memories, a page at a time (AgentOS shape)", "memories",
                      {**ok(ref("MemoriesPage")), **errors(400, 401, 403, 405, 503)}, security=READ_AUTH,
                      parameters=[*common, *PAGE,
                                  query("topics", "Only memories with every one of these topics (repeat the "
                                                  "parameter, or separate with commas).",
                                        {"type": "array", "items": TEXT}),
                                  query("search_content", "Only memories containing this (any case).", TEXT),
                                  query("agent_id", "Only memories made by this agent.", TEXT),
                                  query("team_id", "Only memories made by this team.", TEXT),
                                  query("sort_by", "Order by.", {"type": "string", "enum": list(SORT_FIELDS),
                                                                 "default": "updated_at"}),
                                  query("sort_order", "Direction.", {"type": "string", "enum": ["asc", "desc"],
                                                                     "default": "desc"})],
                      operation_id="list_memories"),
            "post": op("Add a memory of yours", "memories",
                       {**ok(ref("Memory"), example=MEMORY_EXAMPLE), **errors(400, 401, 403, 405), "409": full,
                        "413": too_long, "415": copy.deepcopy(unsupported), **errors(503)},
                       security=WRITE_AUTH, parameters=common, request_body=copy.deepcopy(write),
                       operation_id="create_memory", description="200 with the memory, as AgentOS answers."),
            "delete": op("Delete memories of yours: by id, or all of them", "memories",
                         {**no_content(), **errors(400, 401, 403, 405), "413": copy.deepcopy(too_long),
                          "415": copy.deepcopy(unsupported), **errors(503)},
                         security=WRITE_AUTH, parameters=common, operation_id="delete_memories",
                         request_body={"required": True, "content": {JSON: {
                             "schema": ref("MemoriesDelete"),
                             "examples": {"some": {"value": {"memory_ids": [MEMORY_EXAMPLE["memory_id"]]}},
                                          "all": {"value": {"all": True}}}}}}),
        },
        "/memories/{memory_id}": {
            "get": op("A memory of yours", "memories",
                      {**ok(ref("Memory"), example=MEMORY_EXAMPLE), **errors(400, 401, 403, 404, 405, 503)},
                      security=READ_AUTH, parameters=[memory_id, *common], operation_id="get_memory"),
            "patch": op("Change a memory of yours: its text and topics", "memories",
                        {**ok(ref("Memory"), example=MEMORY_EXAMPLE), **errors(400, 401, 403, 404, 405),
                         "413": copy.deepcopy(too_long), "415": copy.deepcopy(unsupported), **errors(503)},
                        security=WRITE_AUTH, parameters=[memory_id, *common], request_body=copy.deepcopy(write),
                        operation_id="update_memory"),
            "delete": op("Delete a memory of yours", "memories",
                         {**no_content(), **errors(400, 401, 403, 404, 405, 503)},
                         security=WRITE_AUTH, parameters=[memory_id, *common], operation_id="delete_memory"),
        },
        "/memory_topics": {"get": op(
            "The topics of your memories, in alphabetical order", "memories",
            {**ok({"type": "array", "items": STR}, example=["family", "food", "work"]),
             **errors(400, 401, 403, 405, 503)}, security=READ_AUTH, parameters=common,
            operation_id="get_memory_topics")},
        "/user_memory_stats": {"get": op(
            "How many memories you have and when the last changed (AgentOS shape: your own row)", "memories",
            {**ok(ref("MemoryStatsPage")), **errors(400, 401, 403, 405, 503)}, security=READ_AUTH,
            parameters=[*common, *PAGE], operation_id="get_user_memory_stats")},
    }


def personal_paths() -> dict[str, Any]:
    unsupported = error_as(415, "The body is not JSON.")
    return {
        **_memory_paths(unsupported),
        "/profile": {
            "get": op("Your profile (the defaults until you change it)", "profile",
                      {**ok(ref("Profile"), example=PROFILE_EXAMPLE), **errors(401, 405, 503)},
                      security=READ_AUTH, operation_id="get_profile"),
            "patch": op(
                "Change your profile: any of its fields", "profile",
                {**ok(ref("Profile"), example=PROFILE_EXAMPLE), **errors(400, 401, 403, 405),
                 "413": error_response("A text field is longer than its limit.",
                                       example="'custom_instructions' is too long: the limit is 2000 characters."),
                 "415": unsupported, **errors(503)},
                security=WRITE_AUTH, operation_id="update_profile",
                request_body={"required": True, "content": {JSON: {
                    "schema": ref("ProfileChanges"),
                    "example": {"timezone": "Europe/Copenhagen", "memories_enabled": True}}}},
                description="Your display name, timezone and custom instructions go into the prompt of each of "
                            "your runs (from your next message on); `memories_enabled` lets Cirkelline store and "
                            "search memories of what you tell it."),
        },
    }
