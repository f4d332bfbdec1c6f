"""Budget test tools: a user's budget, spend this month, and a watch on the admission coordinator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from chat.models import ChatRun, ChatSession
from chat.runs import admission
from metrics.budgets import month_start
from metrics.models import Budget, RunUsage

from .conftest import adb


def spent(user, cost: str, *, run_id: str = "earlier", started=None) -> None:
    """A finished run of `user` that cost `cost`, started at the start of this month by default."""
    started = started or month_start(timezone.now())
    RunUsage.objects.create(run_id=run_id, user=user, session_id="s", team_id="cirkelline", status="completed",
                            started_at=started, finished_at=started, cost=Decimal(cost), pricing="priced")


def budget(user, limit: str) -> None:
    Budget.objects.create(user=user, monthly_limit=Decimal(limit))


async def nothing_written_but(user, runs: int = 1) -> None:
    assert await adb(RunUsage.objects.filter(user=user).count) == runs  # only the seeded spend
    assert await adb(ChatSession.objects.count) == 0
    assert await adb(ChatRun.objects.count) == 0


@pytest.fixture
def admissions(monkeypatch):
    """The users the admission coordinator admitted, and whose slots it released (a run refused for
    its budget gives its slot back at once)."""
    seen: dict[str, list[int]] = {"admitted": [], "released": []}
    admit, release = admission.Coordinator.admit, admission.Coordinator.release

    async def admitting(self, **kwargs):
        refusal = await admit(self, **kwargs)
        if refusal is None:
            seen["admitted"].append(kwargs["user_id"])
        return refusal

    async def releasing(self, **kwargs):
        seen["released"].append(kwargs["user_id"])
        return await release(self, **kwargs)

    monkeypatch.setattr(admission.Coordinator, "admit", admitting)
    monkeypatch.setattr(admission.Coordinator, "release", releasing)
    return seen
