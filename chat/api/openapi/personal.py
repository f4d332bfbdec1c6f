"""The OpenAPI document's personal routes: the caller's profile (and their bodies' schemas)."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings

from chat.personal.models import DISPLAY_NAME_MAX, timezones

from .common import BOOL, DATE_TIME, E415, JSON, READ_AUTH, WRITE_AUTH, error_response, errors, obj, ok, op, ref

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


def personal_schemas() -> dict[str, Any]:
    fields = _profile_fields()
    return {
        "Profile": obj({**fields, "updated_at": {**DATE_TIME, "description": "Last change; null: never changed "
                                                                             "(the defaults)."}},
                       [*fields, "updated_at"], extra=False),
        "ProfileChanges": obj(fields, extra=False, minProperties=0,
                              description="Any of the fields; only those sent change. Unknown fields are a 400."),
    }


def personal_paths() -> dict[str, Any]:
    unsupported = copy.deepcopy(E415)
    unsupported["description"] = "The body is not JSON."
    return {
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
