"""The staff report pages (usage and delegation failures): filter form, table, chart, CSV.

Views only parse the filter and format numbers; the numbers come from metrics.reports and
metrics.failure_report. The table a page shows and its CSV export are built by the same
function, so the CSV is exactly what is on the page.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode

from .charts import daily_bars
from .models import DelegationFailure, Feedback, RunStatus, RunUsage, UsageKind
from .reports import EARLIEST_DAY, LATEST_DAY, days_between

MAX_DAYS = 366
FORMULA_STARTS = frozenset("=+-@\t\r")
GROUP_CHOICES = [("day", "day"), ("user", "user"), ("model", "model"), ("kind", "kind (chat runs, naming calls)")]
USAGE_COLUMNS = [
    ("key", "group"), ("runs", "runs"), ("input_tokens", "input tokens"), ("output_tokens", "output tokens"),
    ("reasoning_tokens", "reasoning tokens"), ("cache_read_tokens", "cache read tokens"),
    ("cache_write_tokens", "cache write tokens"), ("total_tokens", "total tokens"), ("cost", "cost (USD)"),
    ("unpriced_share", "unpriced tokens"), ("p50_duration_ms", "p50 duration ms"),
    ("p95_duration_ms", "p95 duration ms"), ("p50_ttft_ms", "p50 TTFT ms"), ("p95_ttft_ms", "p95 TTFT ms"),
    ("error_rate", "error rate"), ("rate_limited_rate", "rate-limited rate"), ("timed_out_rate", "timed-out rate"),
    ("cancelled_rate", "cancelled rate"),
]


def _text(name: str, value) -> str:
    """One cell, formatted the same for the page and the CSV."""
    if value is None:
        return "-"
    if name == "cost":
        return f"{Decimal(value):.8f}"
    if name.endswith(("_rate", "_share")):
        return f"{value * 100:.1f}%"
    if name.endswith("_ms"):
        return f"{value:.0f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def within_the_calendar(day: date) -> None:
    """Beyond these days a period's bounds are no dates at all (the midnight after 9999-12-31)."""
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise forms.ValidationError(f"Choose dates from {EARLIEST_DAY} to {LATEST_DAY}.")


class PeriodForm(forms.Form):
    start = forms.DateField(required=False, validators=[within_the_calendar],
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, validators=[within_the_calendar],
                          widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if "start" in self.errors or "end" in self.errors:
            return data
        today = timezone.localdate()
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or max(data["end"] - timedelta(days=29), EARLIEST_DAY)
        if data["start"] > data["end"]:
            raise forms.ValidationError("The start date is after the end date.")
        if (data["end"] - data["start"]).days >= MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        return data


class UsageFilterForm(PeriodForm):
    user = forms.CharField(required=False, help_text="username")
    model = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "any")] + list(RunStatus.choices))
    kind = forms.ChoiceField(required=False, choices=[("", "any")] + list(UsageKind.choices),
                             help_text="chat runs, or the calls that name sessions")
    group = forms.ChoiceField(required=False, choices=GROUP_CHOICES)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        models = RunUsage.objects.order_by("model").values_list("model", flat=True).distinct()
        self.fields["model"].choices = [("", "any")] + [(m, m) for m in models]

    def clean_user(self):
        username = self.cleaned_data.get("user", "").strip()
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise forms.ValidationError("No such user.")
        return user.pk

    def clean_group(self):
        return self.cleaned_data.get("group") or "day"


FEEDBACK_COLUMNS = [("key", "group"), ("runs", "answers"), ("rated", "rated"), ("up", "thumbs up"),
                    ("down", "thumbs down"), ("up_share", "up share"), ("rated_share", "rated share")]


def feedback_tables(runs, start: date, end: date) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, table id, headers, cells) of the feedback on `runs`' answers, by model and by day."""
    chat_runs = runs.filter(kind=UsageKind.CHAT)  # naming calls are no answers: nothing to rate
    headers = [label for _, label in FEEDBACK_COLUMNS]
    tables = []
    for group, title in (("model", "Feedback by model"), ("day", "Feedback by day")):
        rows = Feedback.objects.rates(chat_runs, group, start, end)
        cells = [[_text(name, row[name]) if name != "key" or row[name] is not None else "(none)"
                  for name, _ in FEEDBACK_COLUMNS] for row in rows]
        tables.append((title, f"feedback-by-{group}", headers, cells))
    return tables


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet shows rather than runs: OWASP's advice for CSV exports is a
    leading quote before = + - @ tab or CR, which would otherwise start a formula (a username
    "=HYPERLINK(...)", "+1+1", "@A1")."""
    return "'" + text if text[:1] in FORMULA_STARTS else text


def usage_table(rows: list[dict], totals: dict) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, body cells, totals cells) of the usage report."""
    headers = [label for _, label in USAGE_COLUMNS]
    body = [[_text(name, row[name] if name != "key" or row[name] is not None else "(no user)")
             for name, _ in USAGE_COLUMNS] for row in rows]
    total = [_text(name, "all" if name == "key" else totals[name]) for name, _ in USAGE_COLUMNS]
    return headers, body, total


def usage_report(request: HttpRequest, context: dict) -> HttpResponse:
    form = UsageFilterForm(request.GET or {})
    if not form.is_valid():
        return TemplateResponse(request, "admin/metrics/usage_report.html", {**context, "form": form}, status=400)
    params = form.cleaned_data
    runs = RunUsage.objects.for_period(params["start"], params["end"]).matching(
        user_id=params["user"], model=params["model"], status=params["status"], kind=params["kind"])
    rows, totals = runs.report_with_totals(params["group"])
    headers, body, total = usage_table(rows, totals)
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="usage-{params["start"]}-{params["end"]}-by-{params["group"]}.csv"')
        writer = csv.writer(response)
        # Only the group column holds text from the data; the other cells are numbers we formatted.
        writer.writerows([headers, *([csv_cell(row[0]), *row[1:]] for row in body), total])
        return response
    series = runs.daily_series(params["start"], params["end"])
    csv_query = urlencode({**{k: v for k, v in request.GET.items() if k != "format"}, "format": "csv"})
    return TemplateResponse(request, "admin/metrics/usage_report.html", {
        **context, "form": form, "params": params, "headers": headers, "body": body, "total": total,
        "chart": daily_bars(series), "days": len(days_between(params["start"], params["end"])),
        "gap": totals, "csv_query": csv_query, "title": "Usage report",
        "feedback": feedback_tables(runs, params["start"], params["end"]),
    })


def run_link(run_id: str) -> str | None:
    """The stored run in the chat admin (looked up by name: metrics never imports chat)."""
    try:
        return reverse("admin:chat_chatrun_changelist") + "?" + urlencode({"run_id": run_id})
    except NoReverseMatch:
        return None


def delegation_report(request: HttpRequest, context: dict) -> HttpResponse:
    form = PeriodForm(request.GET or {})
    if not form.is_valid():
        return TemplateResponse(request, "admin/metrics/delegation_report.html", {**context, "form": form}, status=400)
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    failures = DelegationFailure.objects.for_period(start, end)
    runs = RunUsage.objects.for_period(start, end)
    sections = [(title, failures.breakdown(dimension, runs)) for dimension, title in
                (("kind", "By kind"), ("member", "By member"), ("model", "By model"), ("day", "By day"))]
    for _, rows in sections:
        for row in rows:
            row["rate_text"] = _text("failure_rate", row["rate"])
            row["key_text"] = _text("key", row["key"]) if row["key"] not in (None, "") else "(none)"
    recent = [{"failure": f, "link": run_link(f.run_id)}
              for f in failures.select_related("user").order_by("-created_at")[:50]]
    return TemplateResponse(request, "admin/metrics/delegation_report.html", {
        **context, "form": form, "start": start, "end": end, "sections": sections, "recent": recent,
        "total": failures.count(), "delegating": failures.delegating_runs(runs).count(),
        "title": "Delegation failures",
    })
