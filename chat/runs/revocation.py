"""Revoked access stops a user's live runs, in every process: they end as cancelled, and are billed.

`chat.models.access_revoked` fires in the process where access was revoked (a password change,
a deactivation, "log out everywhere", a deleted account; the admin, a shell or
`manage.py changepassword` alike), after its transaction committed. This process's runs of the
user are aborted here; the other processes are told over the cancel channel of
chat.runs.admission (Redis), whose listener hands the message to `cancel_local`.
"""

from __future__ import annotations

import asyncio
import logging

from django.dispatch import receiver

from chat.models import access_revoked
from metrics.models import RunStatus

from .admission import publish_revocation, revoked_user
from .handle import live_run, live_runs_of

logger = logging.getLogger(__name__)


def _abort(handle) -> None:
    """Abort a run from any thread: on its own event loop (asyncio objects are not thread-safe)."""
    task = handle._task
    if task is None:
        return
    loop = task.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        handle.abort(RunStatus.CANCELLED)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(handle.abort, RunStatus.CANCELLED)


def cancel_users_runs(user_id: int) -> int:
    """Abort `user_id`'s live runs in this process; how many there were."""
    handles = live_runs_of(user_id)
    for handle in handles:
        _abort(handle)
    return len(handles)


def cancel_local(message: str) -> None:
    """A message on the cross-process cancel channel: a run id, or a revocation of a user's runs."""
    user_id = revoked_user(message)
    if user_id is not None:
        cancel_users_runs(user_id)
        return
    handle = live_run(message)
    if handle is not None:
        handle.abort(RunStatus.CANCELLED)


@receiver(access_revoked, dispatch_uid="chat.runs.revocation")
def _on_access_revoked(sender, user_id: int, **kwargs) -> None:
    cancel_users_runs(user_id)
    try:
        publish_revocation(user_id)
    except Exception as exc:  # noqa: BLE001 - revocation itself stands; runs elsewhere end at their deadline
        logger.warning("could not tell other processes to stop the runs of user %s (%s)", user_id, exc)
