"""The usage row is written once per run, whatever retries the write."""

import pytest
from django.utils import timezone

from metrics.models import RunUsage
from metrics.recording import record_run_usage

pytestmark = pytest.mark.django_db


def test_recording_the_same_run_twice_keeps_one_row_unchanged(alice):
    now = timezone.now()
    fields = dict(run_id="r-1", user_id=alice.pk, session_id="s", team_id="cirkelline", status="completed",
                  total_tokens=10, started_at=now, finished_at=now)
    record_run_usage(fields)
    record_run_usage({**fields, "total_tokens": 999})
    assert list(RunUsage.objects.values_list("run_id", "total_tokens")) == [("r-1", 10)]


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError, match="unknown RunUsage fields"):
        record_run_usage({"run_id": "x", "tokens": 1})
