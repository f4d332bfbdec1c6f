"""Writing usage rows. One row per run, written once, idempotent on run_id."""

from __future__ import annotations

from typing import Any

from .models import RunUsage

USAGE_FIELDS = frozenset(f.name for f in RunUsage._meta.get_fields() if f.concrete and f.name != "id")


def record_run_usage(fields: dict[str, Any]) -> None:
    """Insert the usage row of one run (sync; callers wrap it in their transaction).

    One INSERT ... ON CONFLICT DO NOTHING: a second call for the same run_id leaves the first
    row unchanged, so a retried flush never double-counts.
    """
    unknown = set(fields) - USAGE_FIELDS - {"user_id"}
    if unknown:
        raise ValueError(f"unknown RunUsage fields: {sorted(unknown)}")
    RunUsage.objects.bulk_create([RunUsage(**fields)], ignore_conflicts=True)
