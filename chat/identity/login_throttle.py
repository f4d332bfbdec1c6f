"""Failed-login throttling for every login (`POST /api/token/`, the chat's and the admin's login
pages: enforced in authenticate() by chat.identity.backends): per username and per client address.

After `CIRKELLINE_LOGIN_FAILURES_PER_USERNAME` failures for one username (from any address), or
`CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS` failures from one address (over any usernames), further
logins for that username / from that address are refused (429) until the window that began with
the first failure ends, even with the right password. Unknown usernames count like known ones,
so a 429 reveals nothing about which accounts exist. A successful login clears its username's
count (only the password holder can do that) but never the address's count (else an attacker
could log into an account of their own to reset it). IPv6 clients are counted per /64, which
one client usually holds whole.

Counters live in Django's default cache: Redis when `REDIS_URL` is set (one count for every
process), process memory otherwise. If the cache is unreachable, logins are let through and a
warning is logged: an outage of Redis must not lock every user out.

Why our own counter: DRF's throttles count every request, not failures, so a user's successful
logins would use up the allowance; django-axes is synchronous and writes database rows per
attempt, and a database outage would then block logins for a second reason. What is needed
here is two fixed-window counters, a few cache calls on a failed login and one read per login.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache as default_cache
from redis.exceptions import RedisError

from chat.errors import LoginThrottled

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Counter:
    scope: str  # "username" or "address"
    key: str
    limit: int


def client_address(request) -> str:
    """The client's address as counted: IPv4 as is, IPv6 as its /64."""
    raw = request.META.get("REMOTE_ADDR") or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class LoginThrottle:
    """The failed-login counts of one login attempt (a username from an address)."""

    def __init__(self, username: str, address: str | None, cache=None) -> None:
        self.cache = cache if cache is not None else default_cache
        prefix = f"{settings.CIRKELLINE_REDIS_PREFIX}:login-failures"
        # Hashed: a username is user input of any length and characters; keys stay short and safe.
        user_digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()
        counters = [
            _Counter("username", f"{prefix}:user:{user_digest}", settings.CIRKELLINE_LOGIN_FAILURES_PER_USERNAME),
            _Counter("address", f"{prefix}:addr:{address}", settings.CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS),
        ]
        # 0: that limit is off. No address: authenticate() called without a request (a shell, a test).
        self.counters = [counter for counter in counters if counter.limit > 0
                         and (address is not None or counter.scope == "username")]

    def check(self) -> None:
        """Raise LoginThrottled if this username or address has used up its failures."""
        if not self.counters:
            return
        keys = [counter.key for counter in self.counters] + [f"{counter.key}:until" for counter in self.counters]
        try:
            values = self.cache.get_many(keys)
        except (RedisError, OSError):
            logger.warning("login throttle: the cache is unreachable; letting the login through", exc_info=True)
            return
        now = time.time()
        for counter in self.counters:
            until = values.get(f"{counter.key}:until")
            if values.get(counter.key, 0) >= counter.limit and until is not None and until > now:
                raise LoginThrottled(counter.scope, until - now)

    def failed(self) -> None:
        """Count a failed login against the username and the address."""
        window = settings.CIRKELLINE_LOGIN_FAILURE_WINDOW
        try:
            for counter in self.counters:
                # add() only sets a missing key: the first failure opens the window, and both
                # keys expire with it. Redis INCR keeps the key's expiry.
                self.cache.add(f"{counter.key}:until", time.time() + window, timeout=window)
                self.cache.add(counter.key, 0, timeout=window)
                try:
                    self.cache.incr(counter.key)
                except ValueError:  # the window ended between add() and incr()
                    self.cache.add(counter.key, 1, timeout=window)
        except (RedisError, OSError):
            logger.warning("login throttle: the cache is unreachable; a failed login was not counted", exc_info=True)

    def succeeded(self) -> None:
        """A successful login clears its username's count (never the address's)."""
        keys = [key for counter in self.counters if counter.scope == "username"
                for key in (counter.key, f"{counter.key}:until")]
        try:
            self.cache.delete_many(keys)
        except (RedisError, OSError):
            logger.warning("login throttle: the cache is unreachable; a count was not cleared", exc_info=True)
