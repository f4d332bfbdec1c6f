"""Usage outlives accounts: a user deleted while a run of theirs is live still gets that run billed,
at once, and staff still see it under the user's name in the usage report."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from chat.runs import RunRequest, start_run
from chat.runs.finalize import retrying_writes
from metrics.models import DelegationFailure, ModelCall, PriceRule, RunUsage
from metrics.recording import record_delegation_failures
from tests.conftest import adb

pytestmark = pytest.mark.django_db(transaction=True)

DELEGATING = "Please research the history of Copenhagen"


@pytest.fixture
def price_rule(db):
    return PriceRule.objects.create(
        provider="scripted", model_pattern="scripted", input_per_million=Decimal("1.25"),
        output_per_million=Decimal("10"), effective_from=timezone.now() - timedelta(days=1))


async def _until_first_call_completed(handle) -> None:
    async for event in handle.events():
        if event.event == "TeamModelRequestCompleted":
            return
    raise AssertionError("the run ended before its first call completed")


async def test_deleting_a_user_during_a_live_run_still_bills_it_once_and_at_once(alice, price_rule, use_latency):
    """Guards against the usage write failing on the deleted user (a foreign key), being retried
    for minutes as if the database were down, and then dropped: a free run."""
    use_latency(0.2)
    alice_pk = alice.pk
    handle = await start_run(RunRequest(user_id=alice_pk, username="alice", message=DELEGATING))
    await _until_first_call_completed(handle)
    await adb(alice.delete)

    result = await handle.wait()
    assert retrying_writes() == 0  # written in the run's own final write, not queued for later
    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    assert row.user_id is None  # the account is gone ...
    assert (row.account_id, row.username) == (alice_pk, "alice")  # ... who it was is kept
    assert row.status == result.status
    assert row.input_tokens > 0 and row.cost > 0
    assert await adb(ModelCall.objects.filter(run_id=handle.run_id).count) >= 1
    assert await adb(RunUsage.objects.count) == 1


def test_a_deleted_users_runs_stay_in_the_usage_report_under_their_name(client, django_user_model, alice, bob):
    """Guards against a deleted account's spend vanishing from the per-user report (or merging
    into one anonymous row with every other deleted account's)."""
    now = timezone.now()
    for run_id, user in (("r1", alice), ("r2", bob)):
        RunUsage.objects.create(run_id=run_id, user=user, account_id=user.pk, username=user.username,
                                session_id="s", team_id="cirkelline", status="completed", started_at=now,
                                finished_at=now, input_tokens=10, total_tokens=10, cost=Decimal("0.5"),
                                pricing="priced")
    alice.delete()
    client.force_login(django_user_model.objects.create_superuser("staff", password="staff-password-1"))
    day = now.date().isoformat()
    page = client.get(reverse("admin:metrics_runusage_report"),
                      {"start": day, "end": day, "group": "user", "format": "csv"}).content.decode()
    lines = page.splitlines()
    assert any(line.startswith("alice (deleted),1,") for line in lines), lines
    assert any(line.startswith("bob,1,") for line in lines), lines


def test_a_delegation_failure_of_a_deleted_user_is_kept(alice):
    """Guards against the live write of a delegation failure failing on the deleted user."""
    user_id = alice.pk
    alice.delete()
    record_delegation_failures({"run_id": "r1", "user_id": user_id},
                               [{"kind": "member_stalled", "member": "research-specialist", "excerpt": ""}])
    assert DelegationFailure.objects.get(run_id="r1").user_id is None
