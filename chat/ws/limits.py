"""What one client may do with the chat websocket: how large a frame, how many frames a second,
how many sockets at once. The consumer applies them; docs/API.md gives the numbers and close codes.

- Frame size: CIRKELLINE_WS_MAX_UNAUTH_FRAME_BYTES until the socket has authenticated (enough for
  an auth frame: nobody can make the server parse a large frame without credentials),
  CIRKELLINE_WS_MAX_FRAME_BYTES after. Checked before parsing; a larger frame gets an error frame
  (413, code `too_large`) and the socket is closed with 1009 ("message too big"). Daphne's own
  `--websocket-max-message-size` (1 MiB by default; deploy/ sets it to CIRKELLINE_WS_MAX_FRAME_BYTES)
  closes with 1009 itself before the application sees the frame.
- Frame rate: a token bucket per socket (`FrameBucket`), CIRKELLINE_WS_FRAMES_PER_SECOND with a
  burst of CIRKELLINE_WS_FRAME_BURST. A frame past it is not handled: the first one gets an error
  frame (429, code `rate_limited`, `retry_after`), and a socket that keeps sending until it owes
  a whole burst more is closed with 1008 ("policy violation").
- Sockets per user: `SocketQuota`, CIRKELLINE_WS_MAX_SOCKETS_PER_USER authenticated sockets at
  once; one more is refused with an error frame (429, code `too_many_sockets`) and 4429. With
  REDIS_URL the count holds across every process: a sorted set per user, each socket a member
  whose score is when it expires; each process renews its sockets' entries every
  `RENEW_INTERVAL` seconds (one call for all of them), so the sockets of a process that died
  age out after `SOCKET_TTL`. Without Redis, or while it is unreachable, each process counts
  its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

from django.conf import settings

from chat.runs.redis_clients import redis_client

from . import frames

logger = logging.getLogger(__name__)

# RFC 6455's own codes: 1009 "message too big", 1008 "policy violation" (Autobahn lets an
# application send them through the correction in cirkelline_site/asgi.py).
CLOSE_TOO_LARGE = 1009
CLOSE_FLOODING = 1008
CLOSE_TOO_MANY_SOCKETS = 4429

SOCKET_TTL = 90.0
RENEW_INTERVAL = 30.0


def frame_limit(authenticated: bool) -> int:
    return settings.CIRKELLINE_WS_MAX_FRAME_BYTES if authenticated else settings.CIRKELLINE_WS_MAX_UNAUTH_FRAME_BYTES


def too_large(text: str, limit: int) -> bool:
    """Whether the frame's UTF-8 form is longer than `limit` bytes (encoded only when it could be)."""
    if len(text) > limit:
        return True
    return not text.isascii() and len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


def too_large_error(limit: int, authenticated: bool) -> dict:
    """The error frame of a frame over `limit` bytes (the socket is closed with 1009 after it)."""
    return frames.error(413, f"The frame is too large: the limit is {limit} bytes"
                             f"{'' if authenticated else ' before authenticating'}.", code="too_large", limit=limit)


def too_fast_error(verdict: str, bucket: FrameBucket) -> dict | None:
    """The error frame of a frame past the socket's rate (`bucket.take()` was not "ok"): none for
    "drop" (refused again), and after "close" the socket is closed with 1008."""
    if verdict == "refuse":
        rate = settings.CIRKELLINE_WS_FRAMES_PER_SECOND
        return frames.error(429, f"Too many frames: at most {rate:g} a second. This one was not handled.",
                            code="rate_limited", retry_after=bucket.retry_after())
    if verdict == "close":
        return frames.error(429, "Too many frames: the connection is closed.", code="rate_limited")
    return None


def too_many_sockets_error() -> dict:
    """The error frame of a socket past CIRKELLINE_WS_MAX_SOCKETS_PER_USER (closed with 4429 after it)."""
    limit = settings.CIRKELLINE_WS_MAX_SOCKETS_PER_USER
    return frames.error(429, f"You have {limit} chat connections open already: close one (another tab?) first.",
                        code="too_many_sockets", limit=limit)


class FrameBucket:
    """A token bucket of frames: `take()` says whether a frame may be handled now ("ok"), is the
    first refused one ("refuse": tell the client), is refused again ("drop"), or means the socket
    is flooding ("close")."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> str:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - 1
        self.stamp = now
        if self.tokens >= 0:
            return "ok"
        if self.tokens < -self.burst:
            return "close"
        return "refuse" if self.tokens >= -1 else "drop"

    def retry_after(self) -> float:
        return round(max(0.0, -self.tokens) / self.rate, 2)


_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class SocketQuota:
    """Authenticated sockets per user (see the module docstring)."""

    def __init__(self) -> None:
        self.local: dict[int, set[str]] = {}
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._renewers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _key(self, user_id: int) -> str:
        return f"{settings.CIRKELLINE_REDIS_PREFIX}:sockets:{user_id}"

    def _redis(self):
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = redis_client(settings.REDIS_URL, timeout=2, socket_connect_timeout=2,
                                                        decode_responses=True)
        return client

    async def acquire(self, user_id: int, socket_id: str) -> bool:
        """Count the socket for its user, unless the user has as many as allowed already."""
        limit = settings.CIRKELLINE_WS_MAX_SOCKETS_PER_USER
        mine = self.local.setdefault(user_id, set())
        if settings.REDIS_URL:
            try:
                now = time.time()
                admitted = await self._redis().eval(_ACQUIRE, 1, self._key(user_id), now, limit, now + SOCKET_TTL,
                                                    socket_id, int(SOCKET_TTL) + 1)
            except Exception as exc:  # noqa: BLE001 - Redis unreachable: this process's own count
                logger.warning("socket quota: Redis unavailable (%s); counting this process's sockets only", exc)
            else:
                if admitted:
                    mine.add(socket_id)
                    self._ensure_renewer()
                return bool(admitted)
        if len(mine) >= limit:
            if not mine:
                del self.local[user_id]
            return False
        mine.add(socket_id)
        return True

    async def release(self, user_id: int, socket_id: str) -> None:
        mine = self.local.get(user_id)
        if mine is not None:
            mine.discard(socket_id)
            if not mine:
                del self.local[user_id]
        if settings.REDIS_URL:
            try:
                await self._redis().zrem(self._key(user_id), socket_id)
            except Exception as exc:  # noqa: BLE001 - the entry ages out after SOCKET_TTL
                logger.warning("socket quota: could not release a socket in Redis (%s)", exc)

    def _ensure_renewer(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._renewers.get(loop)
        if task is None or task.done():
            self._renewers[loop] = loop.create_task(self._renew_forever(), name="cirkelline-socket-quota")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_INTERVAL)
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried at the next interval, before the TTL
                logger.warning("socket quota: could not renew this process's sockets in Redis (%s)", exc)

    async def renew(self) -> None:
        """Push the expiry of this process's sockets forward (one pipeline for all of them)."""
        if not self.local:
            return
        expires = time.time() + SOCKET_TTL
        async with self._redis().pipeline(transaction=False) as pipe:
            for user_id, sockets in list(self.local.items()):
                key = self._key(user_id)
                pipe.zadd(key, {socket_id: expires for socket_id in sockets}, xx=True)
                pipe.expire(key, int(SOCKET_TTL) + 1)
            await pipe.execute()


quota = SocketQuota()
