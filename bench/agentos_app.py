"""BENCH ONLY: agno AgentOS serving the Cirkelline team, for the side-by-side comparison.

    BENCH_PROVIDER_URL=http://127.0.0.1:9100/v1 BENCH_AGENTOS_DB=sqlite:////tmp/x/agentos.db \\
        python -m uvicorn bench.agentos_app:app --port 8000

Needs ``agno[os]`` (bench/requirements.txt). The team is ``bench.teams.build_team``: the same
leader, specialists and flags as Cirkelline, on stock agno ``OpenAILike`` models against the
same fake provider. Storage is agno's own: ``SqliteDb`` for ``sqlite:///<file>``,
``PostgresDb`` for ``postgresql+psycopg://...``. No authentication (AgentOS's default), no
telemetry. With ``CIRKELLINE_STATS_DIR`` set, the app is wrapped by ``bench.loopstats`` so its
event-loop lag is measured exactly like Cirkelline's.
"""

from __future__ import annotations

import logging
import os
from typing import Any

os.environ.setdefault("AGNO_TELEMETRY", "false")


def _db(url: str) -> Any:
    if url.startswith("sqlite:///"):
        from agno.db.sqlite import SqliteDb

        return SqliteDb(db_file=url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql", "postgres")):
        from agno.db.postgres import PostgresDb

        return PostgresDb(db_url=url.replace("postgres://", "postgresql+psycopg://", 1))
    raise ValueError(f"BENCH_AGENTOS_DB must be sqlite:///<file> or postgresql+psycopg://..., got {url!r}")


def build_app() -> Any:
    from agno.os import AgentOS

    from .teams import build_team

    db = _db(os.environ["BENCH_AGENTOS_DB"])
    team = build_team(os.environ["BENCH_PROVIDER_URL"], db=db)
    # Django's logging config (loaded to build the product's team) would log every provider
    # request at INFO; a stock AgentOS process does not.
    logging.getLogger().setLevel(logging.WARNING)
    agent_os = AgentOS(id="bench-agentos", name="bench", teams=[team], db=db, telemetry=False)
    app = agent_os.get_app()
    stats_dir = os.environ.get("CIRKELLINE_STATS_DIR")
    if stats_dir:
        from .loopstats import instrument

        app = instrument(app, stats_dir)
    return app


app = build_app()
