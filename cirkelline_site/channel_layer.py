"""The Redis channel layer with a connection pool that waits when it is full instead of raising.

channels_redis builds each Redis host's pool with redis-py's `ConnectionPool`, which holds at
most `max_connections` (100 unless told) and raises `MaxConnectionsError` for the next command
when every connection is busy. Every websocket connect joins its user's group (`ZADD`, then
`EXPIRE`), each command taking a connection of that pool while it runs: a burst of more than
~99 connects at the same moment on one worker ran the pool out, and the sockets past it were
closed with 1011. redis-py's `BlockingConnectionPool` has the same bound, but a command that
finds every connection busy waits (up to the pool's `timeout`) for the next one released. A
command holds a connection only while it runs, and the layer's blocking read (`BZPOPMIN`, up to
`brpop_timeout`) holds one per process, so the wait is short. The host's options (settings
`CHANNEL_LAYERS`: `max_connections`, `timeout`, the socket options) reach the pool as they did.
"""

from __future__ import annotations

from channels_redis.core import RedisChannelLayer as _RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class RedisChannelLayer(_RedisChannelLayer):
    """channels_redis's layer on a blocking connection pool (see the module docstring)."""

    def create_pool(self, index: int) -> BlockingConnectionPool:
        host = dict(self.hosts[index])  # settings.channel_layers: {"address": REDIS_URL, ...}
        return BlockingConnectionPool.from_url(host.pop("address"), **host)
