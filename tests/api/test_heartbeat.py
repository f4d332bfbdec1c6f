"""Long quiet runs survive proxies: a streamed response that has been quiet for
CIRKELLINE_SSE_HEARTBEAT_SECONDS gets an SSE comment (`: ping`), on a run's stream and on a resumed
one, never while events flow; 0 turns it off; SSE readers (agno's AgentOSClient) are unaffected.

Intervals are small here and every timing assertion is a ratio of the interval."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from chat.runs import RunRequest, start_run
from chat.runs.runlog import RunLog
from tests.conftest import bearer, parse_sse
from tests.live import live_server

pytestmark = pytest.mark.django_db(transaction=True)

RESEARCH = "Please research the history of Copenhagen"
PING = ": ping"


async def read_log(log: RunLog, idle: float, out: list[tuple[float, str]]) -> None:
    loop = asyncio.get_running_loop()
    async for batch in log.follow(idle=idle):
        out.append((loop.time(), "entries" if batch else "ping"))


async def test_a_quiet_log_gets_a_heartbeat_per_interval_and_none_while_entries_flow():
    """Guards against heartbeats sent on a clock whatever the traffic (they must wait for quiet),
    and against a quiet reader left without any (a proxy would cut it)."""
    idle = 0.5
    log = RunLog("run", {"user_id": 1, "session_id": "s"})
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, str]] = []
    reader = asyncio.create_task(read_log(log, idle, seen))
    number = 0
    flowing_until = loop.time() + 3 * idle
    while loop.time() < flowing_until:  # an entry every tenth of the interval, for three intervals
        log.add([(number, "TeamRunContent", "{}")])
        number += 1
        await asyncio.sleep(idle / 10)
    last_entry = loop.time()
    await asyncio.sleep(3.5 * idle)  # the run's member works silently
    log.add([(number, "TeamRunCompleted", "{}")])
    log.end({})
    await asyncio.wait_for(reader, 5)

    pings = [at for at, kind in seen if kind == "ping"]
    assert all(at >= last_entry for at in pings), "no heartbeat while entries flow"
    assert 2 <= len(pings) <= 4  # three and a half quiet intervals: about three heartbeats
    gaps = [later - earlier for (earlier, _), (later, _) in zip(seen, seen[1:], strict=False)]
    ping_gaps = [gap for gap, (_, kind) in zip(gaps, seen[1:], strict=True) if kind == "ping"]
    assert min(ping_gaps) >= 0.9 * idle, "a heartbeat only after a whole quiet interval"
    assert seen[-1][1] == "entries"


async def test_no_heartbeat_without_an_interval():
    log = RunLog("run", {"user_id": 1, "session_id": "s"})
    seen: list[tuple[float, str]] = []
    reader = asyncio.create_task(read_log(log, 0.0, seen))
    await asyncio.sleep(0.3)
    log.add([(0, "TeamRunCompleted", "{}")])
    log.end({})
    await asyncio.wait_for(reader, 5)
    assert [kind for _, kind in seen] == ["entries"]


async def test_a_stopped_reader_leaves_no_timer_behind():
    """Guards against a heartbeat timer that outlives its reader (a closed response) and keeps
    firing for the rest of the process's life."""
    log = RunLog("run", {"user_id": 1, "session_id": "s"})
    stream = log.follow(idle=0.05)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.12)
    assert waiting.done() and waiting.result() == []  # a heartbeat
    await stream.aclose()
    loop = asyncio.get_running_loop()
    timers = [handle for handle in loop._scheduled if not handle.cancelled()
              and getattr(handle._callback, "__qualname__", "").startswith("_Quiet")]
    assert timers == []
    assert log._waiters == []


async def test_a_resumed_stream_of_a_quiet_run_gets_heartbeats(api, alice, use_latency, settings):
    settings.CIRKELLINE_SSE_HEARTBEAT_SECONDS = 0.1
    use_latency(0.5)
    handle = await start_run(RunRequest(user_id=alice.pk, message=RESEARCH))
    response = await api.post(f"/teams/cirkelline/runs/{handle.run_id}/resume", headers=bearer(alice),
                              data={"last_event_index": "-1", "session_id": handle.session_id})
    assert response.status_code == 200
    body = response.text
    assert body.count(f"{PING}\n\n") >= 3  # three provider calls of five intervals each
    frames = parse_sse(body)  # the comments are skipped; the frames are intact
    assert frames[-1].event == "TeamRunCompleted"
    await handle.wait()


async def test_no_heartbeats_when_turned_off(api, alice, use_latency, settings):
    settings.CIRKELLINE_SSE_HEARTBEAT_SECONDS = 0
    use_latency(0.3)
    response = await api.post("/teams/cirkelline/runs", headers=bearer(alice), data={"message": RESEARCH})
    assert response.status_code == 200
    assert PING not in response.text
    assert parse_sse(response.text)[-1].event == "TeamRunCompleted"


def sse_items(raw: str) -> list[str]:
    """The complete frames and comments of a partial SSE body (what follows the last blank line waits)."""
    return [chunk for chunk in raw.split("\n\n")[:-1] if chunk]


@pytest.mark.live
async def test_a_quiet_run_over_the_network_is_kept_alive_and_readers_ignore_the_pings(alice):
    """A real server: while its provider calls are silent the stream gets `: ping` every interval
    (never sooner after the last write), so no silence is much longer than the interval; agno's
    own SSE reader gets the same typed events, ending with the run's completion."""
    from agno.client import AgentOSClient
    from agno.run.team import RunCompletedEvent
    from agno.run.team import RunStartedEvent as TeamRunStartedEvent

    idle, latency = 0.3, 1.5
    env = {"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": str(latency),
           "CIRKELLINE_SSE_HEARTBEAT_SECONDS": str(idle)}
    token = str(AccessToken.for_user(alice))
    with live_server(env) as base_url:
        arrivals: list[tuple[float, str]] = []
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            async with client.stream("POST", "/teams/cirkelline/runs", data={"message": RESEARCH},
                                     headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status_code == 200
                raw = ""
                async for text in response.aiter_text():
                    now = time.monotonic()
                    before = len(sse_items(raw))
                    raw += text
                    arrivals.extend((now, item) for item in sse_items(raw)[before:])
        items = [item for _, item in arrivals]
        pings = [i for i, item in enumerate(items) if item == PING]
        assert len(pings) >= 3
        gaps = [arrivals[i][0] - arrivals[i - 1][0] for i in range(1, len(arrivals))]
        assert min(gaps[i - 1] for i in pings if i > 0) >= 0.5 * idle
        assert max(gaps) < 0.7 * latency, "a provider call's silence was broken by heartbeats"
        assert parse_sse(raw)[-1].event == "TeamRunCompleted"

        import agno.utils.http as agno_http

        agno_http._global_async_client = None  # agno's process-wide client belongs to another loop
        try:
            agno_client = AgentOSClient(base_url=base_url, timeout=30)
            events = [e async for e in agno_client.run_team_stream(
                team_id="cirkelline", message=RESEARCH, headers={"Authorization": f"Bearer {token}"})]
        finally:
            agno_http._global_async_client = None
    assert isinstance(events[0], TeamRunStartedEvent) and isinstance(events[-1], RunCompletedEvent)
    assert [e.event_index for e in events] == sorted({e.event_index for e in events})
