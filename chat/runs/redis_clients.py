"""Cirkelline's own asyncio Redis clients (admission, event logs, socket quota) on pools that wait
for a free connection when all are busy, instead of raising.

redis-py's default pool holds at most 100 connections and raises `MaxConnectionsError` for the
next command while all are in use. Per-socket work runs concurrently: a burst of websocket
connects counts each socket against its user's quota, a burst of watches asks for each session's
live runs, so more than ~99 at the same moment on one worker failed (a watch answered 500, a quota
counted in this process only). redis-py's `BlockingConnectionPool` keeps the bound and makes the
next command wait for a connection released, up to `timeout`. The channel layer gets the same pool
in cirkelline_site/channel_layer.py. docs/OPERATIONS.md, "Redis: connections and timeouts".
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def redis_client(url: str, *, timeout: float, **options: Any) -> Any:
    """An asyncio Redis client whose commands wait up to `timeout` seconds for a free connection of
    its pool (`CIRKELLINE_REDIS_MAX_CONNECTIONS`) and for Redis's answer (`socket_timeout`)."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=settings.CIRKELLINE_REDIS_MAX_CONNECTIONS, timeout=timeout,
        socket_timeout=timeout, **options)
    return aioredis.Redis.from_pool(pool)
