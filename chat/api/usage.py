"""`GET /usage`: the caller's own runs, tokens and cost per day and per model over a date range.

    GET /usage?from=YYYY-MM-DD&to=YYYY-MM-DD     (UTC days, both included; default: the last 30
                                                  days ending today; at most 366 days)

The user is the authenticated caller, always: there is no parameter naming a user, and any
parameter other than `from` and `to` is refused (400), so `?user_id=` can never look like it
worked. Every number comes from the QuerySet methods in metrics/reports.py (`usage_totals`,
`usage_by_kind`, `usage_by_day`, `usage_by_model`). Everything billed to the user counts: chat
runs and the calls that named their sessions (`by_kind` tells them apart; `runs` counts both);
costs are exact decimal strings with 8 places, or null when
nothing in the group had a price (docs/API.md, docs/COST.md).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from chat.errors import BadRequest
from chat.identity import Caller
from chat.storage.executor import run_db
from metrics.models import ModelCall, RunUsage
from metrics.reports import EARLIEST_DAY as EARLIEST
from metrics.reports import LATEST_DAY as LATEST

from .errors import api

DEFAULT_DAYS = 30
MAX_DAYS = 366
PARAMETERS = ("from", "to")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(request: HttpRequest, name: str) -> date | None:
    values = request.GET.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(400, f"'{name}' is given more than once.")
    raw = values[0]
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(400, f"'{name}' must be a date written YYYY-MM-DD.") from None
    if not EARLIEST <= day <= LATEST:
        raise BadRequest(400, f"'{name}' must be between {EARLIEST} and {LATEST}.")
    return day


def date_range(request: HttpRequest, today: date) -> tuple[date, date]:
    """The (from, to) days asked for, checked; BadRequest naming the field otherwise."""
    unknown = sorted(set(request.GET) - set(PARAMETERS))
    if unknown:
        raise BadRequest(400, f"Unknown query parameter '{unknown[0][:40]}': /usage takes only 'from' and 'to', and "
                              "always reports your own usage.")
    start, end = _date(request, "from"), _date(request, "to")
    if end is None:
        end = today
    if start is None:
        start = max(end - timedelta(days=DEFAULT_DAYS - 1), EARLIEST)
    if start > end:
        raise BadRequest(400, f"'from' ({start}) must not be after 'to' ({end}).")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRequest(400, f"The range from 'from' to 'to' covers {(end - start).days + 1} days; at most "
                              f"{MAX_DAYS} are allowed.")
    return start, end


def _cost(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.8f}"


def _numbers(row: dict) -> dict:
    return {**row, "cost": _cost(row["cost"])}


def usage_report(user_id: int, start: date, end: date) -> dict:
    """The body of GET /usage for `user_id` (sync: run it through run_db). Days are UTC days."""
    with timezone.override(UTC):
        runs = RunUsage.objects.filter(user_id=user_id).for_period(start, end)
        totals = runs.usage_totals()
        by_kind = runs.usage_by_kind()
        by_day = runs.usage_by_day(start, end)
        by_model = ModelCall.objects.of_user(user_id).for_period(start, end).usage_by_model()
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "currency": "USD",
        "totals": _numbers(totals),
        "by_kind": [_numbers(row) for row in by_kind],
        "by_day": [{**_numbers(row), "day": row["day"].isoformat()} for row in by_day],
        "by_model": [_numbers(row) for row in by_model],
    }


@api(("GET",))
async def usage(request: HttpRequest, caller: Caller) -> HttpResponse:
    start, end = date_range(request, today=datetime.now(UTC).date())
    return JsonResponse(await run_db(usage_report, caller.pk, start, end))
