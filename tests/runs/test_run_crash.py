"""A run whose task crashes (a bug in our code, not a provider failure) still ends properly:
one terminal error, one usage row, its admission slot freed."""

from __future__ import annotations

import asyncio

import pytest

from chat.runs import live_run
from chat.runs.accounting import RunAccount
from metrics.models import RunUsage
from tests.conftest import adb, bearer, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
TERMINAL = {"TeamRunCompleted", "TeamRunError", "TeamRunCancelled"}
# A run that never ends must fail the test rather than hang it; this run normally takes well under
# a second, so the limit only matters when the bug is in.
HANG = 60.0


class Boom(RuntimeError):
    """The crash this test injects."""


@pytest.fixture
def crash_mid_member(monkeypatch):
    """Make the run task itself raise while the member is streaming its answer.

    The seam is the run service's bookkeeping (`RunAccount.observe`, called by chat.runs.drive
    for every agno event): the exception comes from inside the run task's event loop, as a bug in our
    own code would, after the event has been counted.
    """
    original = RunAccount.observe

    def observe(self, event):
        original(self, event)
        if getattr(event, "event", "") == "RunContent" and getattr(event, "content", None):
            raise Boom("simulated bug while handling a member's text")

    monkeypatch.setattr(RunAccount, "observe", observe)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "json"])
async def test_a_crashing_run_still_ends_with_one_terminal_error_and_one_usage_row(
    api, alice, recorder, crash_mid_member, stream
):
    """Guards against skipping the usage row when the run task crashes (chat.runs.finalize must
    store the usage of a run whose run task raised, like any other), and against a crash escaping
    the run task (chat.runs.drive) before finalize (the client would wait for a terminal event forever).
    """
    async with asyncio.timeout(HANG):
        response = await api.post(RUNS, data={"message": "Please research the history of Copenhagen",
                                              "stream": str(stream).lower()}, headers=bearer(alice))
    if stream:
        assert response.status_code == 200
        frames = parse_sse(response.text)
        terminals = [f for f in frames if f.event in TERMINAL]
        assert terminals == [frames[-1]] and frames[-1].event == "TeamRunError"
        assert frames[-1].data["error_type"] == "internal"
        assert "Traceback" not in frames[-1].data["content"] and "simulated" not in frames[-1].data["content"]
        run_id = frames[-1].data["run_id"]
    else:
        assert response.status_code == 500, response.text
        body = response.json()
        assert body["error_type"] == "internal" and "simulated" not in body["detail"]
        run_id = body["run_id"]

    rows = await adb(lambda: list(RunUsage.objects.filter(run_id=run_id)))
    assert len(rows) == 1
    row = rows[0]
    assert (row.user_id, row.status, row.error_type) == (alice.pk, "error", "internal")
    # the leader's delegation call had completed before the crash: it is billed
    assert row.model_calls == 1 and row.total_tokens > 0 and row.delegations == 1
    # the crash stopped the run: the member's call was its last, the leader never answered
    assert [c.model_label for c in recorder.for_run(run_id)] == ["leader", "research-specialist"]
    assert live_run(run_id) is None  # its admission slot is free again
