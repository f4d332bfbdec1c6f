"""/ready: 200 when the database (and Redis, when configured) answer; 503 naming what is down."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError, connections

from chat.observability import views
from tests.conftest import adb
from tests.outage import break_database, repair_database

pytestmark = pytest.mark.django_db(transaction=True)


async def test_ready_when_the_database_answers(api, settings):
    """Guards against a readiness check that fails a healthy server."""
    settings.REDIS_URL = ""
    response = await api.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_not_ready_while_the_database_fails_and_ready_again_after(api, monkeypatch, settings):
    """Guards against a load balancer sending traffic to a server whose database is down."""
    settings.REDIS_URL = ""
    real_ping = views._ping_database

    def refused() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "_ping_database", refused)
    down = await api.get("/ready")
    assert down.status_code == 503
    assert down.json()["detail"] == "Not ready: database unavailable."
    assert down.json()["checks"] == {"database": "down (OperationalError)"}
    monkeypatch.setattr(views, "_ping_database", real_ping)
    assert (await api.get("/ready")).status_code == 200


async def test_a_hung_database_is_not_ready_within_the_timeout(api, monkeypatch, settings):
    """Guards against /ready hanging with the database (probes pile up instead of failing)."""
    settings.REDIS_URL = ""
    released = threading.Event()
    monkeypatch.setattr(views, "READY_TIMEOUT", 0.2)
    monkeypatch.setattr(views, "_ping_database", lambda: released.wait(30))
    try:
        response = await api.get("/ready")
    finally:
        released.set()
    assert response.status_code == 503 and response.json()["checks"] == {"database": "timed out"}


async def test_redis_down_is_named(api, settings):
    """Guards against /ready ignoring Redis when the deployment depends on it (limits, cancels, websockets)."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = await api.get("/ready")
    assert response.status_code == 503
    assert response.json()["detail"] == "Not ready: redis unavailable."
    assert response.json()["checks"]["database"] == "ok" and response.json()["checks"]["redis"].startswith("down")


async def test_redis_up_is_ready(api, settings):
    """Guards against the Redis check failing a healthy Redis (a PING that never succeeds)."""
    if not django_settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    response = await api.get("/ready")
    assert response.status_code == 200 and response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_postgresql_refusing_connections_is_not_ready_and_ready_once_back(api, settings):
    """Guards against the real outage (connection refused, the pool empty) passing as ready."""
    if connections["default"].vendor != "postgresql":
        pytest.skip("the outage is simulated on PostgreSQL (connection refused)")
    settings.REDIS_URL = ""
    port = django_settings.DATABASES["default"]["PORT"]
    pool_timeout = django_settings.DATABASES["default"]["OPTIONS"]["pool"]["timeout"]
    await adb(break_database)
    try:
        down = await api.get("/ready")
    finally:
        await adb(repair_database, port, pool_timeout)
    assert down.status_code == 503 and down.json()["checks"]["database"] != "ok"
    assert (await api.get("/ready")).status_code == 200
