"""A user's feedback on their answers: thumbs up or down with an optional comment, one per run,
changeable and removable (the queries: metrics.feedback).

Feedback is on a team run of the user's that has ended (a member run, someone else's run or an
unknown id are one answer: RunNotFound, 404; a run still in progress: RunNotEnded, 409). The run's
check (chat's rows) and the write (metrics' row, under the run's usage row) are one transaction.
Sync functions: from async code, through chat.storage.executor.run_db.
"""

from __future__ import annotations

from django.db import transaction

from chat.errors import BadRequest, RunNotEnded, RunNotFound, SessionNotFound
from chat.models import RUNNING_STATUS, ChatRun, ChatSession
from chat.payload import check_text
from metrics.models import FEEDBACK_COMMENT_CHARS, Feedback, Rating, RunUsage, UsageKind


def checked_feedback(fields: dict) -> tuple[str, str]:
    """(rating, comment) from a request's fields; BadRequest naming what is wrong."""
    rating = fields.get("rating")
    if rating not in Rating.values:
        raise BadRequest(400, "'rating' is required: \"up\" or \"down\".")
    comment = fields.get("comment")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise BadRequest(400, "'comment' must be a string.")
    if len(comment) > FEEDBACK_COMMENT_CHARS:
        raise BadRequest(400, f"'comment' may have at most {FEEDBACK_COMMENT_CHARS} characters.")
    check_text("The comment", comment)
    return rating, comment.strip()


def _rated_run(user_pk: int, run_id: str) -> dict:
    """The user's ended team run `run_id` (ChatRun.objects.find), billed as a chat run."""
    run = ChatRun.objects.find(user_pk, run_id)
    if run is None or run["parent_run_id"] is not None:
        raise RunNotFound(run_id)
    if run["status"] == RUNNING_STATUS:
        raise RunNotEnded()
    if not RunUsage.objects.filter(run_id=run_id, kind=UsageKind.CHAT).exists():
        raise RunNotFound(run_id)  # no usage row to keep it under (not a run this service recorded)
    return run


def give_feedback(user_pk: int, run_id: str, rating: str, comment: str) -> tuple[dict, bool]:
    """Rate the user's answer `run_id` (or change the rating); (the feedback, True if new)."""
    with transaction.atomic():
        run = _rated_run(user_pk, run_id)
        return Feedback.objects.give(user_pk, run_id, session_id=run["session__session_id"], rating=rating,
                                     comment=comment)


def withdraw_feedback(user_pk: int, run_id: str) -> bool:
    """Remove the user's feedback on their run `run_id`; whether there was any."""
    run = ChatRun.objects.find(user_pk, run_id)
    if run is None or run["parent_run_id"] is not None:
        raise RunNotFound(run_id)
    return Feedback.objects.withdraw(user_pk, run_id)


def feedback_of_run(user_pk: int, run_id: str) -> dict | None:
    """The user's feedback on their run `run_id`, or None; RunNotFound if it is not their run."""
    run = ChatRun.objects.find(user_pk, run_id)
    if run is None or run["parent_run_id"] is not None:
        raise RunNotFound(run_id)
    return Feedback.objects.of_run(user_pk, run_id)


def feedback_of_session(user_pk: int, session_id: str) -> list[dict]:
    """The user's feedback on the runs of their session; SessionNotFound if it is not shown to them."""
    if not ChatSession.objects.shown_to(user_pk).filter(session_id=session_id).exists():
        raise SessionNotFound(session_id)
    return Feedback.objects.of_session(user_pk, session_id)
