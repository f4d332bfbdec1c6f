"""BENCH ONLY settings: the project's settings, routed to the sync "before" view (bench.sync_app).

    DJANGO_SETTINGS_MODULE=bench.settings_sync python -m daphne ... bench.asgi:application

Nothing in the project imports this module; production settings cannot reach the sync view.
"""

from cirkelline_site.settings import *  # noqa: F403 - the whole point: the same settings, one change

ROOT_URLCONF = "bench.sync_app"
