"""Expire paused runs nobody continued within CIRKELLINE_PAUSE_TTL_SECONDS (run it from cron, e.g.
every 10 minutes). A continue, or a lookup of the run, expires it too when it comes first; this
sweep only makes the usage rows and run rows say so without waiting for that (chat/runs/pause.py)."""

import asyncio

from django.core.management.base import BaseCommand

from chat.runs.pause import expire_stale_runs


class Command(BaseCommand):
    help = "Expire paused runs older than CIRKELLINE_PAUSE_TTL_SECONDS (usage `expired`, run CANCELLED)."

    def handle(self, *args, **options):
        expired = asyncio.run(expire_stale_runs())
        self.stdout.write(f"{expired} paused run(s) expired.")
