"""The sockets of one user watching one session, as one channel-layer group per (user, session):
the in-memory layer in one process, Redis (`REDIS_URL`) across several.

A socket watches at most one session, the one its page shows. The group's name holds the
owner's user id (`chat.u<id>.<hash of the session id>`), and a socket joins only after the
consumer found the session to be its user's, so another user's socket is never in it.

What crosses the group: presence (`presence.join` when a socket starts watching, answered by
`presence.here`; `presence.leave` when it stops: the page shows "open in N windows"), and one
`run.live` notice when a run starts in an existing session (`announce`, called by the run service
for runs of every transport). A run's events never cross it: a watching socket reads the run's event log
(chat.runs.eventlog), in this process or from Redis, so the cost per event does not grow with the
number of tabs' workers, and a socket that starts watching mid-run gets the run from its start.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from chat import runs

from .tasks import spawn

logger = logging.getLogger(__name__)


def group_name(user_pk: int, session_id: str) -> str:
    """The group of one user's sockets watching one session (a valid channel-layer group name)."""
    return f"chat.u{user_pk}.{hashlib.sha256(session_id.encode()).hexdigest()[:40]}"


def announce(handle: runs.RunHandle) -> None:
    """Tell the owner's sockets watching the run's session that it started (any transport)."""
    if handle.request.session_id is None:
        return  # a new session: its id was generated now, nobody can be watching it yet
    layer = get_channel_layer()
    if layer is None:
        return
    # `after`: a paused run's continuation is announced with the index its events follow.
    message = {"type": "run.live", "run_id": handle.run_id, "session_id": handle.session_id,
               "after": handle.index_base - 1}
    spawn(_send_notice(layer, group_name(handle.user_id, handle.session_id), message), "ws-run-live")


async def _send_notice(layer: Any, group: str, message: dict) -> None:
    try:
        await layer.group_send(group, message)
    except Exception:  # noqa: BLE001 - watchers miss the live copy; the stored run has it all
        logger.exception("could not tell the session's sockets about run %s", message["run_id"])


runs.when_live(announce)


class Fanout:
    """One socket's membership of its user's session groups, and what it knows of its peers."""

    def __init__(self, layer: Any, channel: str):
        self.layer = layer
        self.channel = channel
        self.session: str | None = None
        self.group: str | None = None
        self.peers: set[str] = set()

    async def watch(self, user_pk: int, session_id: str | None) -> None:
        """Watch `session_id` (the caller checked it is the user's) instead of the current one."""
        if session_id == self.session:
            return
        await self.leave()
        if session_id is None:
            return
        self.session, self.group = session_id, group_name(user_pk, session_id)
        await self.layer.group_add(self.group, self.channel)
        await self.layer.group_send(self.group, self._presence("presence.join"))

    async def leave(self) -> None:
        group = self.group
        if group is None:
            return
        self.session = self.group = None
        self.peers.clear()
        await self.layer.group_send(group, {"type": "presence.leave", "from": self.channel, "group": group})
        await self.layer.group_discard(group, self.channel)

    def _presence(self, kind: str) -> dict:
        return {"type": kind, "from": self.channel, "group": self.group}

    def _is_peer_message(self, message: dict) -> bool:
        # Messages queued before this socket switched sessions name the old group: ignore them.
        return message.get("from") != self.channel and self.group is not None and message.get("group") == self.group

    def peer_joined(self, message: dict) -> bool:
        """`presence.join` from another socket: True if it is one of ours to greet."""
        if not self._is_peer_message(message):
            return False
        self.peers.add(message["from"])
        return True

    async def greet(self, peer: str) -> None:
        """Tell a socket that just joined that this one is here."""
        try:
            await self.layer.send(peer, self._presence("presence.here"))
        except ChannelFull:
            # The peer's process has CIRKELLINE_CHANNEL_LAYER_CAPACITY messages waiting: its count
            # of windows is one short, which does not warrant closing this socket (1011).
            logger.warning("presence: the joining socket's channel is full; not greeted")

    def peer_here(self, message: dict) -> bool:
        if not self._is_peer_message(message):
            return False
        self.peers.add(message["from"])
        return True

    def peer_left(self, message: dict) -> bool:
        if not self._is_peer_message(message) or message["from"] not in self.peers:
            return False
        self.peers.discard(message["from"])
        return True
