"""The OpenAPI document's feedback routes (a user's ratings of their answers) and their bodies."""

from __future__ import annotations

import copy
from typing import Any

from metrics.models import FEEDBACK_COMMENT_CHARS

from .common import (
    DATE_TIME,
    E415,
    READ_AUTH,
    RUN_ID,
    SESSION_ID,
    SESSION_ID_PATTERN,
    STR,
    TEXT,
    WRITE_AUTH,
    any_body,
    body,
    error_response,
    errors,
    form_of,
    no_content,
    obj,
    ok,
    op,
    ref,
)

FEEDBACK_EXAMPLE = {"run_id": "f0f2334e-62a2-433a-97c3-bf37761fe342", "session_id": "s-2026-12-01-a",
                    "rating": "down", "comment": "The dates are wrong: Copenhagen was founded around 1160.",
                    "created_at": "2026-12-01T09:30:00Z", "updated_at": "2026-12-01T09:31:12Z"}
_RATING = {"enum": ["up", "down"], "description": "Thumbs up or thumbs down."}
_COMMENT = {**TEXT, "maxLength": FEEDBACK_COMMENT_CHARS,
            "description": "Optional; what was good or wrong (surrounding white space is dropped)."}


def feedback_schemas() -> dict[str, Any]:
    request = body({"rating": _RATING, "comment": _COMMENT}, ["rating"],
                  example={"rating": "up", "comment": "Clear and short."})
    return {
        "Feedback": obj({
            "run_id": STR, "session_id": {"type": "string", "pattern": SESSION_ID_PATTERN}, "rating": _RATING,
            "comment": STR, "created_at": DATE_TIME, "updated_at": DATE_TIME},
            ["run_id", "session_id", "rating", "comment", "created_at", "updated_at"],
            description="Your feedback on one answer (one per run)."),
        "FeedbackList": obj({"data": {"type": "array", "items": ref("Feedback")}}, ["data"]),
        "FeedbackRequest": request,
        # each field once, as text (a repeated field is a 400)
        "FeedbackRequestForm": form_of(request),
    }


def feedback_paths() -> dict[str, Any]:
    not_ended = error_response("The run is still in progress: rate its answer once it has ended.",
                               example="The run has not ended yet: rate its answer once it is complete.")
    none = error_response("Not your run (or unknown, or a member run), or no feedback on it yet.",
                          example="No feedback on this run.")
    return {
        "/runs/{run_id}/feedback": {
            "get": op("Your feedback on an answer of yours", "feedback",
                      {**ok(ref("Feedback"), example=FEEDBACK_EXAMPLE), **errors(400, 401), "404": none,
                       **errors(405, 503)}, security=READ_AUTH, parameters=[RUN_ID], operation_id="get_feedback"),
            "post": op("Rate an answer of yours (thumbs up or down, an optional comment), or change your rating",
                       "feedback",
                       {**ok(ref("Feedback"), example=FEEDBACK_EXAMPLE, description="Changed."),
                        **ok(ref("Feedback"), example=FEEDBACK_EXAMPLE, status=201, description="Given."),
                        **errors(400, 401, 403, 404, 405), "409": not_ended, **errors(413),
                        "415": copy.deepcopy(E415), **errors(503)},
                       security=WRITE_AUTH, parameters=[RUN_ID], operation_id="give_feedback",
                       description="One feedback per run (a team run of yours that has ended): the first POST "
                                   "gives it (201), later ones replace its rating and comment (200).",
                       request_body=any_body("FeedbackRequest")),
            "delete": op("Take back your feedback on an answer of yours", "feedback",
                         {**no_content("Removed (or there was none)."), **errors(400, 401, 403, 404, 405, 503)},
                         security=WRITE_AUTH, parameters=[RUN_ID], operation_id="delete_feedback"),
        },
        "/sessions/{session_id}/feedback": {"get": op(
            "Your feedback on the answers of a session of yours, oldest answer first", "feedback",
            {**ok(ref("FeedbackList"), example={"data": [FEEDBACK_EXAMPLE]}), **errors(400, 401, 404, 405, 503)},
            security=READ_AUTH, parameters=[SESSION_ID], operation_id="get_session_feedback")},
    }
