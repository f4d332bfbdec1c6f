"""Two server processes sharing PostgreSQL/SQLite and Redis: limits and cancels hold across them.

They use REDIS_URL when it is set, else a Redis answering on 127.0.0.1:6379 (so a plain
`make test` on a machine with Redis runs them too); they skip only when no Redis answers.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import redis
from django.conf import settings

from metrics.models import RunUsage
from tests.conftest import adb, bearer
from tests.live import live_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

RUNS = "/teams/cirkelline/runs"
SLOW = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": "1.0", "CIRKELLINE_MAX_RUNS_PER_USER": "2"}
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _redis_url() -> str | None:
    """REDIS_URL if set, else the local Redis if it answers a PING, else None."""
    if settings.REDIS_URL:
        return settings.REDIS_URL
    client = redis.Redis.from_url(LOCAL_REDIS, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    return LOCAL_REDIS


@pytest.fixture
def two_servers():
    url = _redis_url()
    if url is None:
        pytest.skip(f"cross-process coordination needs Redis: REDIS_URL is unset and nothing answers at {LOCAL_REDIS}")
    env = {**SLOW, "REDIS_URL": url}
    with live_server(env) as first, live_server(env) as second:
        yield first, second


async def _first_event(client: httpx.AsyncClient, url: str, headers: dict, message: str):
    """Start a streamed run; return its run id and a task reading the rest of the stream."""
    response_cm = client.stream("POST", url, data={"message": message}, headers=headers)
    response = await response_cm.__aenter__()
    lines = response.aiter_lines()
    async for line in lines:
        if line.startswith("data: "):
            run_id = json.loads(line[6:])["run_id"]
            break

    async def rest() -> str:
        body = [line async for line in lines]
        await response_cm.__aexit__(None, None, None)
        return "\n".join(body)

    return run_id, asyncio.create_task(rest())


async def test_a_cancel_reaches_a_run_in_another_process(two_servers, alice):
    first, second = two_servers
    headers = bearer(alice)
    async with httpx.AsyncClient(timeout=30) as client:
        run_id, rest = await _first_event(client, f"{first}{RUNS}", headers, "Please research Copenhagen")
        cancel = await client.post(f"{second}{RUNS}/{run_id}/cancel", headers=headers)
        tail = await rest
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    assert "event: TeamRunCancelled" in tail
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.status == "cancelled"


async def test_the_per_user_limit_counts_runs_in_every_process(two_servers, alice, bob):
    first, second = two_servers
    async with httpx.AsyncClient(timeout=30) as client:
        started = [await _first_event(client, f"{first}{RUNS}", bearer(alice), f"question {i}") for i in range(2)]
        refused = await client.post(f"{second}{RUNS}", data={"message": "third", "stream": "false"},
                                    headers=bearer(alice))
        bobs = await client.post(f"{second}{RUNS}", data={"message": "hi", "stream": "false"}, headers=bearer(bob))
        for _, rest in started:
            assert "TeamRunCompleted" in await rest
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert bobs.status_code == 200
