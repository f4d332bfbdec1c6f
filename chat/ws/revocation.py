"""Revoked access closes the user's open sockets, in every process.

Every authenticated socket is in its user's channel-layer group (`user_group`); when
`chat.models.access_revoked` fires (a password change, a deactivation, "log out everywhere", a
deleted account; in whichever process it happened), one `access.revoked` message goes to that
group, through Redis when `REDIS_URL` is set, so it reaches every worker. Each socket then checks
its own credentials again and closes (4401) if they no longer hold; a login that survives (the
session that changed the password keeps it) stays open.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.dispatch import receiver

from chat.models import access_revoked

logger = logging.getLogger(__name__)

REVOKED = "access.revoked"
_sending: set[asyncio.Task] = set()  # kept referenced until sent
_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def user_group(user_pk: int) -> str:
    """The group of all of one user's authenticated sockets."""
    return f"chat.u{user_pk}"


def _log_failure(future, user_id: int) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("could not tell the sockets of user %s that their access was revoked (%r)", user_id,
                       future.exception())


def serving(loop: asyncio.AbstractEventLoop) -> None:
    """Note the event loop this process's sockets run on (the consumer calls it as a socket opens)."""
    _loops.add(loop)


@receiver(access_revoked, dispatch_uid="chat.ws.revocation")
def _on_access_revoked(sender, user_id: int, **kwargs) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = (user_group(user_id), {"type": REVOKED})
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    # Sent on the loop the sockets run on: the in-memory layer's queues belong to it (a message put
    # from another loop would wake nobody). One send reaches every process through Redis.
    serving_loops = [loop for loop in list(_loops) if loop.is_running() and not loop.is_closed()]
    target = serving_loops[0] if serving_loops else current
    try:
        if target is not None and target is current:
            task = target.create_task(layer.group_send(*message))
            _sending.add(task)
            task.add_done_callback(_sending.discard)
            task.add_done_callback(lambda t: _log_failure(t, user_id))
        elif target is not None:
            future = asyncio.run_coroutine_threadsafe(layer.group_send(*message), target)
            future.add_done_callback(lambda f: _log_failure(f, user_id))
        else:  # no sockets here and no loop (a script): through Redis to the servers
            async_to_sync(layer.group_send)(*message)
    except Exception as exc:  # noqa: BLE001 - revocation itself stands; each socket re-checks on its next frame
        logger.warning("could not tell the sockets of user %s that their access was revoked (%s)", user_id, exc)
