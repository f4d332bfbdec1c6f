"""A database outage for tests, simulated on PostgreSQL: connections refused until repaired. Sync
(the ORM's connections): call through tests.conftest.adb, from the database threads."""

from __future__ import annotations

from django.db import connections


def break_database() -> None:
    """Point the default connection at a port nothing listens on (PostgreSQL: connection refused)."""
    db = connections["default"]
    db.settings_dict["PORT"] = "1"  # nothing listens there: connection refused
    db.settings_dict["OPTIONS"]["pool"]["timeout"] = 1.0
    db.close_pool()


def repair_database(port, timeout) -> None:
    """Undo break_database: the port and pool timeout the settings had."""
    db = connections["default"]
    db.settings_dict["PORT"] = port
    db.settings_dict["OPTIONS"]["pool"]["timeout"] = timeout
    db.close_pool()
