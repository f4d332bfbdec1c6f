"""Two deployments on one Redis (CIRKELLINE_REDIS_PREFIX apart) never reach each other's sockets."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.conf import settings

from chat.ws.fanout import group_name
from cirkelline_site.channel_layer import RedisChannelLayer
from cirkelline_site.settings import channel_layers


def _layer(prefix: str) -> RedisChannelLayer:
    config = channel_layers(settings.REDIS_URL, prefix)["default"]
    assert config["BACKEND"] == "cirkelline_site.channel_layer.RedisChannelLayer"
    return RedisChannelLayer(**config["CONFIG"])


async def test_a_frame_sent_to_a_group_stays_in_its_deployment():
    """Guards against the channel layer ignoring CIRKELLINE_REDIS_PREFIX: a group's name holds a user
    id and a session id hash, which user 1 of another deployment on the same Redis has too, so
    that user's sockets would be sent this user's chat."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (the CI PostgreSQL + Redis job sets it)")
    run = uuid.uuid4().hex[:8]
    ours, theirs = _layer(f"deployment-a-{run}"), _layer(f"deployment-b-{run}")
    group = group_name(1, "the same session id")
    try:
        our_socket, their_socket = await ours.new_channel(), await theirs.new_channel()
        await ours.group_add(group, our_socket)
        await theirs.group_add(group, their_socket)
        await ours.group_send(group, {"type": "run.frame", "text": "alice's chat"})
        assert (await asyncio.wait_for(ours.receive(our_socket), 5))["text"] == "alice's chat"
        # A channel's messages arrive in order: what reaches their socket first, after the group
        # send, is the marker sent to it afterwards, not alice's frame.
        await theirs.send(their_socket, {"type": "marker"})
        assert (await asyncio.wait_for(theirs.receive(their_socket), 5))["type"] == "marker"
    finally:
        for layer in (ours, theirs):
            await layer.flush()  # its own prefix's keys only, and its connections
