"""Feedback in the metrics app: the rates per model and per day, the staff list (filters, statuses,
the run link) and the usage report's feedback tables, on known rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from metrics.models import Feedback, RunUsage

from .conftest import GEMINI, LOCAL
from .test_admin_reports import _cells

pytestmark = pytest.mark.django_db
DEC = date(2026, 12, 1), date(2026, 12, 3)
PERIOD = {"start": "2026-12-01", "end": "2026-12-03"}


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("staff", password="staff-password-1"))
    return client


@pytest.fixture
def rated(report_rows, alice, bob):
    """r1 (alice, Gemini, 1 Dec) up; r3 (alice, Gemini, 2 Dec) down with a comment; r4 (bob, local,
    2 Dec) up, already done by staff; and a naming call of alice's (no answer: never rated)."""
    RunUsage.objects.create(run_id="n1", user=alice, session_id="s", team_id="cirkelline", kind="naming",
                            model=GEMINI, status="completed", started_at=datetime(2026, 12, 2, 9, 1, tzinfo=UTC))
    for run_id, user, rating, comment, status in [("r1", alice, "up", "", "unread"),
                                                  ("r3", alice, "down", "Wrong dates.", "unread"),
                                                  ("r4", bob, "up", "Great", "done")]:
        Feedback.objects.create(run_id=run_id, user=user, session_id="s", rating=rating, comment=comment,
                                status=status, created_at=datetime(2026, 12, 4, tzinfo=UTC))


def _by_key(rows):
    return {row["key"]: row for row in rows}


def test_the_feedback_rate_per_model_and_per_day(rated):
    """Guards against shares over the wrong denominator, naming calls counted as answers, and days
    without answers left out."""
    answers = RunUsage.objects.for_period(*DEC).matching(kind="chat")
    models = _by_key(Feedback.objects.rates(answers, "model", *DEC))
    assert list(models) == [GEMINI, LOCAL]
    assert {k: models[GEMINI][k] for k in ("runs", "rated", "up", "down", "up_share", "rated_share")} == {
        "runs": 4, "rated": 2, "up": 1, "down": 1, "up_share": 0.5, "rated_share": 0.5}
    assert (models[LOCAL]["runs"], models[LOCAL]["up"], models[LOCAL]["up_share"], models[LOCAL]["rated_share"]) == (
        2, 1, 1.0, 0.5)
    days = Feedback.objects.rates(answers, "day", *DEC)
    assert [(d["key"], d["runs"], d["up"], d["down"], d["up_share"]) for d in days] == [
        (date(2026, 12, 1), 2, 1, 0, 1.0), (date(2026, 12, 2), 2, 1, 1, 0.5), (date(2026, 12, 3), 2, 0, 0, None)]
    assert days[2]["rated_share"] == 0.0
    # with naming calls among them, the answers' count would be off by one on 2 December
    everything = _by_key(Feedback.objects.rates(RunUsage.objects.for_period(*DEC), "day", *DEC))
    assert everything[date(2026, 12, 2)]["runs"] == 3


def test_the_usage_report_shows_the_feedback_tables(staff_client, rated):
    page = staff_client.get(reverse("admin:metrics_runusage_report"), {**PERIOD, "group": "model"}).content.decode()
    header, *rows = _cells(page, "feedback-by-model")
    assert header == ["group", "answers", "rated", "thumbs up", "thumbs down", "up share", "rated share"]
    assert rows == [[GEMINI, "4", "2", "1", "1", "50.0%", "50.0%"], [LOCAL, "2", "1", "1", "0", "100.0%", "50.0%"]]
    _, *days = _cells(page, "feedback-by-day")
    assert days == [["2026-12-01", "2", "1", "1", "0", "100.0%", "50.0%"],
                    ["2026-12-02", "2", "2", "1", "1", "50.0%", "100.0%"],
                    ["2026-12-03", "2", "0", "0", "0", "-", "0.0%"]]
    only_bob = staff_client.get(reverse("admin:metrics_runusage_report"), {**PERIOD, "user": "bob"}).content.decode()
    assert _cells(only_bob, "feedback-by-model")[1:] == [[GEMINI, "1", "0", "0", "0", "-", "0.0%"],
                                                         [LOCAL, "2", "1", "1", "0", "100.0%", "50.0%"]]


def _listed(page: str) -> list[str]:
    return re.findall(r'class="run-link">([^<]+)</a>', page)


def test_staff_see_the_feedback_list_filter_it_and_mark_it(staff_client, rated):
    url = reverse("admin:metrics_feedback_changelist")
    page = staff_client.get(url).content.decode()
    assert sorted(_listed(page)) == ["r1", "r3", "r4"] and "Wrong dates." in page
    assert _listed(staff_client.get(url, {"rating__exact": "down"}).content.decode()) == ["r3"]
    assert sorted(_listed(staff_client.get(url, {"status__exact": "unread"}).content.decode())) == ["r1", "r3"]
    assert _listed(staff_client.get(url, {"model": LOCAL}).content.decode()) == ["r4"]
    link = re.search(r'<a href="([^"]+)" class="run-link">r3</a>', page).group(1)
    assert link == reverse("admin:chat_chatrun_changelist") + "?run_id=r3"

    ids = list(Feedback.objects.filter(run_id__in=["r1", "r3"]).values_list("pk", flat=True))
    response = staff_client.post(url, {"action": "mark_seen", "_selected_action": ids}, follow=True)
    assert "2 marked seen" in response.content.decode()
    assert dict(Feedback.objects.values_list("run_id", "status")) == {"r1": "seen", "r3": "seen", "r4": "done"}
    staff_client.post(url, {"action": "mark_done", "_selected_action": ids[:1]})
    assert Feedback.objects.get(pk=ids[0]).status == "done"
    # staff change nothing the user said
    detail = staff_client.get(reverse("admin:metrics_feedback_change", args=[ids[1]])).content.decode()
    assert 'name="status"' in detail and 'name="comment"' not in detail and 'name="rating"' not in detail


def test_the_feedback_list_is_for_staff_only(client, alice, rated):
    client.force_login(alice)
    response = client.get(reverse("admin:metrics_feedback_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
