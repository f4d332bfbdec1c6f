"""Failed logins on POST /api/token/ are throttled per username and per client address."""

from __future__ import annotations

import logging
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from django.conf import settings as django_settings
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from tests.conftest import adb
from tests.live import live_server

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = "/api/token/"
ALICE = {"username": "alice", "password": "alice-password-1"}
WRONG = {"username": "alice", "password": "not-her-password"}


@pytest.fixture(autouse=True)
def small_limits(settings, offline_team):
    """Low limits, and counters of this test's own (a fresh key prefix: nothing carries over)."""
    settings.CIRKELLINE_REDIS_PREFIX = f"{settings.CIRKELLINE_REDIS_PREFIX}-{uuid.uuid4().hex[:8]}"
    settings.CIRKELLINE_LOGIN_FAILURES_PER_USERNAME = 3
    settings.CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS = 5
    settings.CIRKELLINE_LOGIN_FAILURE_WINDOW = 900


@asynccontextmanager
async def client_at(address: str):
    """An in-process HTTP client whose requests come from `address`."""
    from cirkelline_site.asgi import application

    transport = httpx.ASGITransport(app=application, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
        yield client


async def _tokens_of(user) -> int:
    return await adb(OutstandingToken.objects.filter(user=user).count)


async def test_the_username_limit_refuses_even_the_right_password(alice):
    """Guards against unlimited password guessing on one account (25+ wrong passwords in a row
    were never throttled)."""
    async with client_at("10.0.0.1") as client:
        for _ in range(3):
            assert (await client.post(LOGIN, json=WRONG)).status_code == 401
        refused = await client.post(LOGIN, json=ALICE)
    assert refused.status_code == 429, refused.text
    assert "failed logins" in refused.json()["detail"] and "username" in refused.json()["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 900
    assert "access" not in refused.json() and await _tokens_of(alice) == 0

    async with client_at("10.0.0.2") as elsewhere:  # the limit is the account's, from any address
        assert (await elsewhere.post(LOGIN, json=ALICE)).status_code == 429
        assert (await elsewhere.post(LOGIN, json={"username": "bob", "password": "x"})).status_code == 401


async def test_unknown_usernames_are_counted_like_known_ones(alice):
    """Guards against revealing which usernames exist (a 429 only for real accounts)."""
    async with client_at("10.0.0.1") as client:
        statuses = [(await client.post(LOGIN, json={"username": "ghost", "password": "x"})).status_code
                    for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


async def test_the_address_limit_refuses_that_address_only(alice, bob):
    """Guards against one address spraying guesses over many usernames without limit (also by
    logging into an account of its own in between), and against that address's failures locking
    out users who log in from elsewhere."""
    async with client_at("10.0.0.1") as attacker:
        for n in range(4):
            response = await attacker.post(LOGIN, json={"username": f"user{n}", "password": "guess"})
            assert response.status_code == 401
        # the attacker's own account: a success must not clear the address's count
        assert (await attacker.post(LOGIN, json={"username": "bob", "password": "bob-password-1"})).status_code == 200
        assert (await attacker.post(LOGIN, json={"username": "user4", "password": "guess"})).status_code == 401
        refused = await attacker.post(LOGIN, json=ALICE)
    assert refused.status_code == 429 and "address" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) > 0

    async with client_at("10.0.0.2") as other:
        allowed = await other.post(LOGIN, json=ALICE)
    assert allowed.status_code == 200 and allowed.json()["access"]
    assert await _tokens_of(alice) == 1


async def test_other_addresses_failures_below_the_username_limit_do_not_block_a_login(alice):
    """Guards against a lock-out by failures that stay below the per-username limit, and checks
    that a successful login clears its username's count (only the password holder can do that)."""
    async with client_at("10.0.0.1") as attacker, client_at("10.0.0.2") as owner:
        for _ in range(2):
            assert (await attacker.post(LOGIN, json=WRONG)).status_code == 401
        assert (await owner.post(LOGIN, json=ALICE)).status_code == 200
        for _ in range(2):  # a fresh count: 2 + 2 would have reached the limit of 3
            assert (await attacker.post(LOGIN, json=WRONG)).status_code == 401
        assert (await owner.post(LOGIN, json=ALICE)).status_code == 200
    assert await _tokens_of(alice) == 2


async def test_ipv6_clients_are_counted_per_64_block(alice):
    """Guards against an IPv6 client escaping the address limit by rotating through its /64."""
    for n in range(5):
        async with client_at(f"2001:db8:1:2::{n + 1:x}") as client:
            assert (await client.post(LOGIN, json={"username": f"user{n}", "password": "x"})).status_code == 401
    async with client_at("2001:db8:1:2::ff") as client:
        assert (await client.post(LOGIN, json=ALICE)).status_code == 429
    async with client_at("2001:db8:1:3::1") as client:
        assert (await client.post(LOGIN, json=ALICE)).status_code == 200


async def test_a_cache_outage_lets_logins_through_and_is_logged(alice, settings, caplog):
    """Throttling fails open: an unreachable Redis must not lock every user out."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    with caplog.at_level(logging.WARNING, logger="chat.identity.login_throttle"):
        async with client_at("10.0.0.1") as client:
            for _ in range(4):
                assert (await client.post(LOGIN, json=WRONG)).status_code == 401
            assert (await client.post(LOGIN, json=ALICE)).status_code == 200
    assert any("login throttle" in record.getMessage() for record in caplog.records)


@pytest.mark.live
async def test_the_counts_are_shared_by_every_server_process(alice, settings):
    """Guards against per-process counters: behind N workers an attacker would get N x the limit."""
    if not django_settings.REDIS_URL:
        pytest.skip("counters shared across processes need REDIS_URL (the CI PostgreSQL + Redis job sets it)")
    limits = {"CIRKELLINE_LOGIN_FAILURES_PER_USERNAME": "3", "CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS": "50"}
    with live_server(limits) as first, live_server(limits) as second:
        async with httpx.AsyncClient(timeout=10) as client:
            statuses = [(await client.post(f"{base}{LOGIN}", json=WRONG)).status_code
                        for base in (first, second, first)]
            refused = await client.post(f"{second}{LOGIN}", json=ALICE)
    assert statuses == [401, 401, 401]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert await _tokens_of(alice) == 0
