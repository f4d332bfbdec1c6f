"""Expire paused runs nobody continued within CIRKELLINE_PAUSE_TTL_SECONDS, once. Every server
process's reaper does this periodically, and a continue or a lookup of such a run expires it when
it comes first; this is for when no server runs (chat/runs/pause.py)."""

import asyncio

from django.core.management.base import BaseCommand

from chat.runs.pause import expire_stale_runs


class Command(BaseCommand):
    help = "Expire paused runs older than CIRKELLINE_PAUSE_TTL_SECONDS (usage `expired`, run CANCELLED)."

    def handle(self, *args, **options):
        expired = asyncio.run(expire_stale_runs())
        self.stdout.write(f"{expired} paused run(s) expired.")
