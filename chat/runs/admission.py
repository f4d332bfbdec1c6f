"""Admission control and cancellation across processes.

Per-user limits and "which process runs this run" must hold across every worker, or a user
gets N × the limit behind N workers and a cancel that lands on the wrong worker does nothing.

- Without `REDIS_URL` (one process): the process's own registry is the truth.
- With `REDIS_URL`: each user's active runs are a Redis sorted set (score = when the run's
  lease expires, so a crashed worker's runs age out), admission is one atomic Lua call, every
  live run has a key naming its owner, and cancels for runs living in another process are
  published on a channel every process listens to.

The per-process cap (`CIRKELLINE_MAX_CONCURRENT_RUNS`) is always local: it protects this
process's memory and event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .redis_clients import redis_client

logger = logging.getLogger(__name__)

# Extra lease time past a run's deadline before Redis forgets it (finalisation included).
LEASE_GRACE = 60.0
# The cancel listener PINGs Redis after this long without a message (see _relay_cancels).
LISTENER_PING_INTERVAL = 10.0

_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[6], 'EX', ARGV[5])
return 1
"""


@dataclass
class Refusal:
    detail: str
    retry_after: float
    # Whose limit: "user" (CIRKELLINE_MAX_RUNS_PER_USER) or "process" (CIRKELLINE_MAX_CONCURRENT_RUNS).
    scope: str = "user"
    limit: int | None = None


def _user_key(user_id: int) -> str:
    return f"{settings.CIRKELLINE_REDIS_PREFIX}:active:{user_id}"


def _run_key(run_id: str) -> str:
    return f"{settings.CIRKELLINE_REDIS_PREFIX}:run:{run_id}"


def _cancel_channel() -> str:
    return f"{settings.CIRKELLINE_REDIS_PREFIX}:cancel"


# A message on the cancel channel is a run id, or this prefix and a user id: stop all of that
# user's runs (revoked access). '@' and ' ' never occur in a run id (chat.models.SESSION_ID_RE).
REVOKE_PREFIX = "@revoke "


def revoked_user(message: str) -> int | None:
    """The user whose runs a cancel-channel message stops, if it is a revocation."""
    if isinstance(message, str) and message.startswith(REVOKE_PREFIX):
        try:
            return int(message[len(REVOKE_PREFIX):])
        except ValueError:
            return None
    return None


def publish_revocation(user_id: int) -> None:
    """Tell every process to stop `user_id`'s runs (with REDIS_URL). Sync: Django signals run in
    a thread of their own, or in a script with no event loop."""
    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.publish(_cancel_channel(), f"{REVOKE_PREFIX}{user_id}")
    finally:
        client.close()


class Coordinator:
    """Decides whether a run may start and reaches runs in other processes."""

    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._listeners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # -- redis plumbing (one client and one listener per event loop) ------------------------

    def _redis(self):
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = redis_client(self.redis_url, timeout=2, socket_connect_timeout=2,
                                                        decode_responses=True)
        return client

    def ensure_listener(self, on_cancel: Callable[[str], Any]) -> None:
        """Listen for cancels of runs in this process (once per event loop)."""
        if not self.redis_url:
            return
        loop = asyncio.get_running_loop()
        task = self._listeners.get(loop)
        if task is None or task.done():
            self._listeners[loop] = loop.create_task(self._listen(on_cancel), name="cirkelline-cancel-listener")

    async def _listen(self, on_cancel: Callable[[str], Any]) -> None:
        import redis.asyncio as aioredis

        # A connection of its own, named so an operator finds it in CLIENT LIST.
        client = aioredis.Redis.from_url(
            self.redis_url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True,
            client_name=f"{settings.CIRKELLINE_REDIS_PREFIX}:cancel-listener",
        )
        backoff = 1.0
        try:
            while True:
                pubsub = client.pubsub()
                try:
                    await pubsub.subscribe(_cancel_channel())
                    backoff = 1.0
                    await _relay_cancels(pubsub, on_cancel, LISTENER_PING_INTERVAL)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis restarted, unreachable or silent: keep trying
                    logger.warning("cancel listener lost Redis (%s); reconnecting in %.0f s", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                finally:
                    await _close_quietly(pubsub)
        finally:
            await _close_quietly(client)

    # -- admission ----------------------------------------------------------------------------

    async def admit(self, *, user_id: int, run_id: str, local_user_runs: int, local_runs: int,
                    lease: float) -> Refusal | None:
        """None if the run may start (and it is now counted), else why not."""
        if local_runs >= settings.CIRKELLINE_MAX_CONCURRENT_RUNS:
            return Refusal("The server is at capacity right now; please retry shortly.", retry_after=2,
                           scope="process", limit=settings.CIRKELLINE_MAX_CONCURRENT_RUNS)
        cap = settings.CIRKELLINE_MAX_RUNS_PER_USER
        refusal = Refusal(
            f"You already have {cap} runs in progress; wait for one to finish or cancel it.", retry_after=5,
            scope="user", limit=cap,
        )
        if not self.redis_url:
            return refusal if local_user_runs >= cap else None
        now = time.time()
        ttl = int(lease + LEASE_GRACE)
        try:
            admitted = await self._redis().eval(
                _ADMIT, 2, _user_key(user_id), _run_key(run_id), now, cap, run_id, now + lease + LEASE_GRACE, ttl,
                user_id,
            )
        except Exception as exc:  # Redis unreachable: keep serving, with this process's view only
            logger.warning("admission without Redis (%s): per-user limit enforced per process only", exc)
            return refusal if local_user_runs >= cap else None
        return None if admitted else refusal

    async def release(self, *, user_id: int, run_id: str) -> None:
        if not self.redis_url:
            return
        try:
            client = self._redis()
            async with client.pipeline(transaction=True) as pipe:
                pipe.zrem(_user_key(user_id), run_id)
                pipe.delete(_run_key(run_id))
                await pipe.execute()
        except Exception as exc:  # the lease expires by itself
            logger.warning("could not release run %s in Redis (%s); its lease will expire", run_id, exc)

    # -- runs in other processes --------------------------------------------------------------

    async def owner_elsewhere(self, run_id: str) -> int | None:
        """The owner of a live run in some process, per Redis (None without Redis or if unknown)."""
        if not self.redis_url:
            return None
        try:
            value = await self._redis().get(_run_key(run_id))
        except Exception as exc:
            logger.warning("could not look up run %s in Redis (%s)", run_id, exc)
            return None
        return int(value) if value is not None else None

    async def cancel_elsewhere(self, run_id: str, *, wait: float = 10.0) -> bool:
        """Ask the process running `run_id` to cancel it; True once it has ended."""
        client = self._redis()
        await client.publish(_cancel_channel(), run_id)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not await client.exists(_run_key(run_id)):
                return True
            await asyncio.sleep(0.05)
        return False


async def _close_quietly(closable) -> None:
    """Close a Redis client or subscription, bounded: this runs while the listener is being
    cancelled (a test's or a server's event loop closing waits for it) or after Redis was lost."""
    try:
        await asyncio.wait_for(closable.aclose(), 2)
    except Exception:  # noqa: BLE001 - a connection already gone is closed enough
        pass


async def _relay_cancels(pubsub, on_cancel: Callable[[str], Any], interval: float) -> None:
    """Hand every cancel published to `on_cancel`, until Redis goes quiet.

    A subscribed connection is silent until someone cancels, so a read timeout cannot tell an
    idle channel from a dead Redis: each read waits at most `interval` and returns None (never a
    timeout error, whatever the client's `socket_timeout`), and after a quiet interval a PING goes
    out. Redis answers it within the next one, or the connection is given up (ConnectionError):
    a Redis that vanished without closing the connection is noticed within two intervals instead
    of when TCP keepalive gives up, and the listener subscribes afresh.
    """
    loop = asyncio.get_running_loop()
    heard = loop.time()
    while True:
        message = await pubsub.get_message(timeout=interval)
        now = loop.time()
        if message is not None:
            heard = now
            if message["type"] == "message":
                on_cancel(message["data"])
        elif now - heard > 1.5 * interval:
            raise ConnectionError(f"Redis did not answer a PING within {interval:g} s")
        else:
            await pubsub.ping()


_coordinator: Coordinator | None = None


def coordinator() -> Coordinator:
    global _coordinator
    if _coordinator is None or _coordinator.redis_url != settings.REDIS_URL:
        _coordinator = Coordinator(settings.REDIS_URL)
    return _coordinator
