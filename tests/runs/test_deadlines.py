"""Which deadline a run gets: deep research has its own, longer one."""

from __future__ import annotations

import asyncio

import pytest

from metrics.models import RunUsage
from tests.conftest import adb, bearer

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
# Each scripted provider call takes LATENCY; a delegated run makes three calls (leader, member,
# leader), so it needs at least 3 × LATENCY whatever the machine, twice the normal deadline below.
LATENCY = 0.4


async def test_deep_research_runs_under_its_own_longer_deadline(api, alice, settings, use_latency):
    """Guards against using the normal deadline for deep research (chat/runs/service.py run_deadline, or
    chat/start_run not passing deep_research to it): the deep run would time out too.

    The same request without deep research is the control: it must time out, which proves the
    normal deadline is really shorter than the run.
    """
    settings.CIRKELLINE_RUN_TIMEOUT = 1.5 * LATENCY
    settings.CIRKELLINE_DEEP_RESEARCH_TIMEOUT = 100 * LATENCY
    use_latency(LATENCY)
    message = "Please research the history of Copenhagen"

    deep, plain = await asyncio.gather(
        api.post(RUNS, data={"message": message, "stream": "false", "deep_research": "true"}, headers=bearer(alice)),
        api.post(RUNS, data={"message": message, "stream": "false"}, headers=bearer(alice)),
    )

    assert deep.status_code == 200, deep.text
    assert deep.json()["status"] == "COMPLETED" and deep.json()["member_responses"]
    assert plain.status_code == 504 and plain.json()["error_type"] == "timeout"
    rows = await adb(lambda: {r.run_id: r for r in RunUsage.objects.all()})
    deep_row, plain_row = rows[deep.json()["run_id"]], rows[plain.json()["run_id"]]
    assert (deep_row.deep_research, deep_row.status, deep_row.model_calls) == (True, "completed", 3)
    assert deep_row.duration_ms >= 3 * LATENCY * 1000 > settings.CIRKELLINE_RUN_TIMEOUT * 1000
    assert (plain_row.deep_research, plain_row.status) == (False, "timed_out")
