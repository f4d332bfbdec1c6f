"""The stored run (ChatRun) and its usage row (RunUsage) say the same thing about how it ended.

agno's run statuses are AgentOS's (COMPLETED, CANCELLED, ERROR, ...), with no "timed out";
usage rows distinguish error, rate_limited and timed_out. The mapping is the one the JSON
response already uses: completed -> COMPLETED, cancelled -> CANCELLED, everything else -> ERROR.
"""

from __future__ import annotations

import pytest

from chat.agents.scripted import provider_error
from chat.models import ChatRun
from chat.runs import RunRequest, cancel_run, start_run
from metrics.models import RunUsage
from tests.conftest import adb, bearer

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


def _statuses(run_id: str) -> tuple[str, str, str]:
    stored = ChatRun.objects.get(run_id=run_id)
    return RunUsage.objects.get(run_id=run_id).status, stored.status, stored.payload["status"]


async def test_a_timed_out_run_is_stored_as_an_error_not_as_cancelled(api, alice, settings, use_latency):
    """Guards against a timed-out run stored with agno's status CANCELLED (agno stops it through
    its cancel machinery) while its usage row says timed_out."""
    settings.CIRKELLINE_RUN_TIMEOUT = 0.3
    use_latency(2.0)
    response = await api.post(RUNS, data={"message": "Please research Copenhagen", "stream": "false"},
                              headers=bearer(alice))
    body = response.json()
    assert response.status_code == 504 and body["error_type"] == "timeout"
    run_id, session_id = body["run_id"], body["session_id"]

    assert await adb(_statuses, run_id) == ("timed_out", "ERROR", "ERROR")
    looked_up = await api.get(f"{RUNS}/{run_id}", headers=bearer(alice))
    assert looked_up.status_code == 200 and looked_up.json()["status"] == "ERROR"
    listed = (await api.get(f"/sessions/{session_id}/runs", headers=bearer(alice))).json()
    assert [r["status"] for r in listed if r["run_id"] == run_id] == ["ERROR"]


@pytest.mark.parametrize(("setup", "usage", "stored"), [
    ("ok", "completed", "COMPLETED"),
    ("provider_500", "error", "ERROR"),
    ("rate_limited", "rate_limited", "ERROR"),
    ("deadline", "timed_out", "ERROR"),
    ("cancel", "cancelled", "CANCELLED"),
])
async def test_every_stored_run_agrees_with_its_usage_row(alice, settings, failures, use_latency, setup, usage,
                                                          stored):
    settings.CIRKELLINE_MAX_RETRIES = 0
    if setup == "provider_500":
        failures.push(provider_error(500))
    elif setup == "rate_limited":
        failures.push(provider_error(429))
    elif setup == "deadline":
        settings.CIRKELLINE_RUN_TIMEOUT = 0.3
        use_latency(2.0)
    elif setup == "cancel":
        use_latency(0.3)
    handle = await start_run(RunRequest(user_id=alice.pk, message="Please research Copenhagen"))
    async for event in handle.events():
        if setup == "cancel" and event.event == "RunStarted":  # the member is working
            await cancel_run(alice.pk, handle.run_id)
    assert (await handle.wait()).status == usage
    assert await adb(_statuses, handle.run_id) == (usage, stored, stored)
