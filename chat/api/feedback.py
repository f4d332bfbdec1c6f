"""Feedback on answers: `POST|GET|DELETE /runs/{run_id}/feedback`, `GET /sessions/{session_id}/feedback`.

The caller's own runs only (another user's run, a member run or an unknown id: 404); the work is
chat.runs.feedback's. Not an AgentOS route (AgentOS has none for feedback), so the shapes are
Cirkelline's own (docs/API.md): `{"run_id", "session_id", "rating", "comment", "created_at",
"updated_at"}`, times ISO 8601 in UTC.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from chat.errors import NotFound
from chat.identity import Caller
from chat.runs import feedback
from chat.storage.executor import run_db

from .errors import api
from .parsing import body_fields


class FeedbackNotFound(NotFound):
    detail = "No feedback on this run."


@api(("GET", "POST", "DELETE"))
async def run_feedback(request: HttpRequest, run_id: str, caller: Caller) -> HttpResponse:
    if request.method == "POST":
        rating, comment = feedback.checked_feedback(await body_fields(request))
        given, created = await run_db(feedback.give_feedback, caller.pk, run_id, rating, comment)
        return JsonResponse(given, status=201 if created else 200)
    if request.method == "DELETE":
        await run_db(feedback.withdraw_feedback, caller.pk, run_id)
        return HttpResponse(status=204)
    given = await run_db(feedback.feedback_of_run, caller.pk, run_id)
    if given is None:
        raise FeedbackNotFound(run_id)
    return JsonResponse(given)


@api(("GET",))
async def session_feedback(request: HttpRequest, session_id: str, caller: Caller) -> HttpResponse:
    return JsonResponse({"data": await run_db(feedback.feedback_of_session, caller.pk, session_id)})
