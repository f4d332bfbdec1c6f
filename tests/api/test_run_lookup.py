"""Looking up and cancelling a run that is still running: only its owner ever sees it."""

from __future__ import annotations

import pytest

from chat.runs import RunRequest, live_run, start_run
from metrics.models import RunUsage
from tests.conftest import adb, bearer, error_body

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
# Long enough that the run is certainly still in its first provider call while the test looks it
# up (a slow machine only makes the window wider); the test ends it with a cancel, not a wait.
PROVIDER_LATENCY = 30.0


async def test_bob_gets_404_for_alices_live_run_and_cannot_cancel_it(api, alice, bob, use_latency):
    """Guards against removing the owner check on the live-run lookup in chat/api/views.py run_detail
    (bob would get alice's partial answer with a 200) and on the live cancel (bob would stop it).

    Only finished runs were looked up by a second user before; a live run takes another path
    (the in-process registry), so it needs its own test.
    """
    use_latency(PROVIDER_LATENCY)
    handle = await start_run(RunRequest(user_id=alice.pk, message="my secret plans"))
    run_url = f"{RUNS}/{handle.run_id}"
    try:
        mine = await api.get(run_url, headers=bearer(alice))
        assert mine.status_code == 200, mine.text
        assert mine.json()["status"] == "RUNNING"  # the live path answered, not the stored one

        theirs = await api.get(run_url, headers=bearer(bob))
        unknown = await api.get(f"{RUNS}/no-such-run", headers=bearer(bob))
        assert theirs.status_code == 404 and error_body(theirs) == {"detail": "Run not found."}
        assert error_body(unknown) == error_body(theirs)  # nothing tells bob the run exists

        cancel = await api.post(f"{run_url}/cancel", headers=bearer(bob))
        assert cancel.status_code == 404 and error_body(cancel) == {"detail": "Run not found."}
        assert not handle.is_finished and live_run(handle.run_id) is handle
    finally:
        stopped = await api.post(f"{run_url}/cancel", headers=bearer(alice))
    assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    assert (row.user_id, row.status) == (alice.pk, "cancelled")
    assert await adb(RunUsage.objects.filter(user=bob).count) == 0
