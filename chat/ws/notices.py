"""A user's own notices to all of their open sockets: a session renamed (by them, or by the model).

`chat.models.session_renamed` fires once a session's new name is committed, in whichever process
named it; one `session.renamed` message goes to the user's channel-layer group (the group every
authenticated socket of theirs is in: chat.ws.revocation.user_group), through Redis when
`REDIS_URL` is set, so every worker's sockets of that user hear it. The consumer turns it into a
`session_renamed` frame (docs/API.md), and chat lists update without polling.
"""

from __future__ import annotations

import logging

from channels.layers import get_channel_layer
from django.dispatch import receiver

from chat.models import session_renamed

from .revocation import user_group

logger = logging.getLogger(__name__)

RENAMED = "session.renamed"


def renamed_frame(message: dict) -> dict:
    """The `session_renamed` frame of a `session.renamed` channel-layer message."""
    return {"type": "session_renamed", "session_id": message["session_id"], "session_name": message["session_name"],
            "named_by": message["named_by"]}


@receiver(session_renamed, dispatch_uid="chat.ws.notices.renamed")
async def _on_session_renamed(sender, user_id: int, session_id: str, session_name: str, named_by: str,
                              **kwargs) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(user_group(user_id), {"type": RENAMED, "session_id": session_id,
                                                 "session_name": session_name, "named_by": named_by})
