"""Staff reports in the admin: the numbers of fixture rows in the HTML and the CSV, the chart,
totals above the change lists, price changes through the admin, and no access for non-staff."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from chat.models import ChatRun, ChatSession
from metrics.models import PriceRule, RunUsage

pytestmark = pytest.mark.django_db
USAGE = "admin:metrics_runusage_report"
PERIOD = {"start": "2026-12-01", "end": "2026-12-03"}


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("staff", password="staff-password-1"))
    return client


def _cells(html: str, table_id: str) -> list[list[str]]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S) for row in rows]


def test_the_usage_report_shows_the_numbers_of_the_rows_by_day(staff_client, report_rows):
    """Guards against numbers computed in the template or a CSV that differs from the page."""
    response = staff_client.get(reverse(USAGE), {**PERIOD, "group": "day"})
    assert response.status_code == 200
    header, day1, day2, day3, total = _cells(response.content.decode(), "usage-table")
    assert header[:3] == ["group", "runs", "input tokens"]
    assert day1 == ["2026-12-01", "2", "110", "50", "0", "0", "0", "160", "0.10000001", "0.0%", "2000", "2900", "200",
                    "200", "50.0%", "0.0%", "0.0%", "0.0%"]
    assert day2[8:10] == ["0.20000000", "14.3%"] and day2[12:14] == ["250", "385"]
    assert day3[11] == "9700" and day3[15:17] == ["50.0%", "50.0%"]
    assert total[:2] == ["all", "6"] and total[7:10] == ["610", "0.60000001", "11.5%"]
    assert "Not priced: 2 runs, 70 tokens" in response.content.decode()

    exported = staff_client.get(reverse(USAGE), {**PERIOD, "group": "day", "format": "csv"})
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows == [header, day1, day2, day3, total]


def test_the_usage_report_groups_by_user_and_filters(staff_client, report_rows):
    page = staff_client.get(reverse(USAGE), {**PERIOD, "group": "user"}).content.decode()
    rows = {r[0]: r for r in _cells(page, "usage-table")[1:-1]}
    assert rows["alice"][1] == "3" and rows["alice"][8] == "0.30000001"
    assert rows["bob"][10:12] == ["4000", "9400"]
    only_bob = staff_client.get(reverse(USAGE), {**PERIOD, "group": "model", "user": "bob", "format": "csv"})
    body = list(csv.reader(io.StringIO(only_bob.content.decode())))
    assert [r[:2] for r in body[1:]] == [["google:gemini-2.5-flash", "1"], ["openai-like:local", "2"], ["all", "3"]]


def test_the_usage_report_shows_naming_calls_apart(staff_client, report_rows, alice):
    RunUsage.objects.create(run_id="n1", user=alice, session_id="s", team_id="cirkelline", kind="naming",
                            model="google:gemini-2.5-flash", status="completed",
                            started_at=datetime(2026, 12, 2, 9, tzinfo=UTC), duration_ms=300, input_tokens=30,
                            output_tokens=6, total_tokens=36, cost=Decimal("0.00000500"), pricing="priced")
    page = staff_client.get(reverse(USAGE), {**PERIOD, "group": "kind"}).content.decode()
    rows = {r[0]: r for r in _cells(page, "usage-table")[1:]}
    assert (rows["chat"][1], rows["chat"][8]) == ("6", "0.60000001")
    assert (rows["naming"][1], rows["naming"][7], rows["naming"][8]) == ("1", "36", "0.00000500")
    assert (rows["all"][1], rows["all"][8]) == ("7", "0.60000501")
    only_naming = staff_client.get(reverse(USAGE), {**PERIOD, "group": "user", "kind": "naming", "format": "csv"})
    body = list(csv.reader(io.StringIO(only_naming.content.decode())))
    assert [r[:2] for r in body[1:]] == [["alice", "1"], ["all", "1"]]
    changelist = staff_client.get(reverse("admin:metrics_runusage_changelist"), {"kind__exact": "naming"})
    assert changelist.status_code == 200 and ">n1<" in changelist.content.decode()


def test_the_chart_has_one_bar_per_day_in_range(staff_client, report_rows):
    page = staff_client.get(reverse(USAGE), {"start": "2026-12-01", "end": "2026-12-07"}).content.decode()
    assert page.count('class="bar runs"') == 7 and page.count('class="bar cost"') == 7
    assert "<script" not in page.split('<svg', 1)[1].split("</svg>", 1)[0]
    assert '<title>2026-12-03: 0.3000</title>' in page
    default = staff_client.get(reverse(USAGE))  # no filter: the last 30 days
    assert default.status_code == 200 and default.content.decode().count('class="bar runs"') == 30


def test_a_bad_filter_is_a_400_with_the_form(staff_client, report_rows):
    response = staff_client.get(reverse(USAGE), {"start": "2026-12-05", "end": "2026-12-01"})
    assert response.status_code == 400 and "start date is after the end date" in response.content.decode()
    assert staff_client.get(reverse(USAGE), {**PERIOD, "user": "nobody"}).status_code == 400


@pytest.mark.parametrize("name", [USAGE, "admin:metrics_delegationfailure_report"])
def test_non_staff_cannot_open_the_reports(client, alice, report_rows, name):
    """Guards against usage data leaking to ordinary users (they are sent to the admin login)."""
    client.force_login(alice)
    response = client.get(reverse(name), PERIOD)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    client.logout()
    assert client.get(reverse(name), PERIOD).status_code == 302


def test_staff_without_the_view_permission_get_403(client, django_user_model, report_rows):
    clerk = django_user_model.objects.create_user("clerk", password="clerk-password-1", is_staff=True)
    client.force_login(clerk)
    assert client.get(reverse(USAGE), PERIOD).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_runusage"))
    assert client.get(reverse(USAGE), PERIOD).status_code == 200


def test_the_delegation_report_counts_rates_and_links_to_the_run(staff_client, report_rows, alice):
    session = ChatSession.objects.create(session_id="s", user=alice)
    ChatRun.objects.create(run_id="r3", session=session, user=alice, run_type="team", status="COMPLETED", payload={})
    response = staff_client.get(reverse("admin:metrics_delegationfailure_report"), PERIOD)
    page = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="failure-total">4</strong>' in page and '<strong id="delegating-runs">3</strong>' in page
    assert re.search(r"<td>member_error</td><td>1</td><td>1</td>\s*<td>3</td><td>33.3%</td>", page)
    assert re.search(r"<td>audio-specialist</td><td>2</td><td>1</td>\s*<td>3</td><td>66.7%</td>", page)
    assert re.search(r"<td>2026-12-02</td><td>2</td><td>1</td>\s*<td>1</td><td>200.0%</td>", page)
    link = re.search(r'<a href="([^"]+)" class="run-link">r3</a>', page).group(1)
    assert link == "/admin/chat/chatrun/?run_id=r3"
    drilled = staff_client.get(link)
    assert drilled.status_code == 200 and drilled.context["cl"].result_count == 1


def test_change_lists_show_totals_of_the_filtered_rows(staff_client, report_rows):
    page = staff_client.get(reverse("admin:metrics_runusage_changelist")).content.decode()
    assert "Totals of the 6 rows" in page and "cost 0.60000001 USD" in page and "(610 total)" in page
    page = staff_client.get(reverse("admin:metrics_runusage_changelist"), {"status__exact": "completed"}).content
    assert b"Totals of the 2 rows" in page and b"cost 0.30000000 USD" in page
    assert staff_client.get(reverse("admin:metrics_modelcall_changelist")).status_code == 200
    failures = staff_client.get(reverse("admin:metrics_delegationfailure_changelist")).content.decode()
    assert failures.count('href="/admin/chat/chatrun/?run_id=r3"') == 2


def test_the_admin_index_links_the_reports(staff_client):
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert reverse(USAGE) in page and reverse("admin:metrics_delegationfailure_report") in page


def test_changing_a_price_in_the_admin_opens_a_new_rule_and_keeps_the_old(staff_client):
    """Guards against editing a billed price in place (history would no longer say what was charged)."""
    old = PriceRule.objects.create(provider="scripted", model_pattern="scripted", input_per_million=Decimal("1"),
                                   output_per_million=Decimal("2"),
                                   effective_from=datetime.now(UTC) - timedelta(days=3))
    form = {"input_per_million": "1.500000", "output_per_million": "2.000000", "cache_read_per_million": "",
            "cache_write_per_million": "", "reasoning_per_million": "", "cache_in_input": "on",
            "reasoning_in_output": "on", "effective_to_0": "", "effective_to_1": "", "source_url": "",
            "source_read": "", "note": ""}
    response = staff_client.post(reverse("admin:metrics_pricerule_change", args=[old.pk]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    old.refresh_from_db()
    new = PriceRule.objects.get(provider="scripted", effective_to__isnull=True)
    assert (old.input_per_million, new.input_per_million) == (Decimal("1"), Decimal("1.5"))
    assert old.effective_to == new.effective_from


def test_usage_rows_cannot_be_added_or_changed_in_the_admin(staff_client, report_rows):
    assert staff_client.get(reverse("admin:metrics_runusage_add")).status_code == 403
    assert staff_client.get(reverse("admin:metrics_modelcall_add")).status_code == 403
    assert staff_client.get(reverse("admin:metrics_budget_add")).status_code == 200


@pytest.mark.parametrize("name", [USAGE, "admin:metrics_delegationfailure_report"])
@pytest.mark.parametrize("dates", [{"end": "9999-12-31"}, {"end": "0001-01-01"}, {"start": "0001-01-01"},
                                   {"start": "9999-12-31", "end": "9999-12-31"}])
def test_dates_at_the_ends_of_the_calendar_are_a_400_with_a_sentence(staff_client, name, dates):
    """Guards against a 500 from date arithmetic past the calendar's ends (the next midnight of
    9999-12-31, thirty days before 0001-01-01)."""
    response = staff_client.get(reverse(name), dates)
    assert response.status_code == 400
    assert "Choose dates from 1970-01-01 to 9999-12-30." in response.content.decode()


def test_the_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas(staff_client, django_user_model):
    """OWASP's advice for CSV exports: a text cell starting with = + - @ tab or CR gets a leading
    quote, so a username like '=HYPERLINK(...)' is shown, not evaluated; numbers stay numbers."""
    names = ["+1+1", "-2+3", "@A1", "=HYPERLINK(\"http://x\")", "\tx", "\rx", "plain"]
    for i, name in enumerate(names):
        user = django_user_model.objects.create_user(name, password="pw-123456789")
        RunUsage.objects.create(run_id=f"csv-{i}", user=user, session_id="s", team_id="cirkelline",
                                model="google:gemini-2.5-flash", status="completed",
                                started_at=datetime(2026, 12, 1, 10, tzinfo=UTC),
                                finished_at=datetime(2026, 12, 1, 10, tzinfo=UTC), duration_ms=1000,
                                input_tokens=3, output_tokens=2, total_tokens=5, cost=Decimal("0.1"),
                                pricing="priced")
    exported = staff_client.get(reverse(USAGE), {**PERIOD, "group": "user", "format": "csv"})
    rows = list(csv.reader(io.StringIO(exported.content.decode(), newline="")))
    groups = {row[0] for row in rows[1:-1]}
    assert groups == {"'+1+1", "'-2+3", "'@A1", "'=HYPERLINK(\"http://x\")", "'\tx", "'\rx", "plain"}
    assert all(row[1:3] == ["1", "3"] and row[8] == "0.10000000" for row in rows[1:-1])
    assert rows[-1][:2] == ["all", "7"]
    page = staff_client.get(reverse(USAGE), {**PERIOD, "group": "user"}).content.decode()
    assert "<td>+1+1</td>" in page, "the page shows names as they are"
