"""A run's database work is prepared SQL: from its token check to its naming call's write, a run
compiles no ORM query (through the ORM, compiling the same queries was most of that work's CPU:
docs/PERFORMANCE.md, "The performance floor")."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.compiled import compiled_queries
from tests.conftest import bearer, parse_sse, until

pytestmark = pytest.mark.django_db(transaction=True)


def _namings() -> int:
    # A cursor, not the ORM: this wait must not count as the run's.
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM metrics_runusage WHERE kind = %s AND status <> %s",
                       ["naming", "running"])
        return cursor.fetchone()[0]


async def test_a_new_sessions_run_and_its_naming_call_compile_no_query(api, alice, settings):
    """Guards every per-run statement of the streamed path (the token's user, the budget, the
    claim and the running usage row, the final write and its ledger, the naming check, its usage
    row and the rename) against going back to the ORM."""
    settings.CIRKELLINE_AUTO_NAME_SESSIONS = True
    first = await api.post("/teams/cirkelline/runs", data={"message": "Warm up, please"}, headers=bearer(alice))
    assert parse_sse(first.text)[-1].event == "TeamRunCompleted"
    assert await until(lambda: _namings() == 1)
    with compiled_queries() as compiled:
        response = await api.post("/teams/cirkelline/runs", data={"message": "Tell me about Copenhagen's history"},
                                  headers=bearer(alice))
        assert parse_sse(response.text)[-1].event == "TeamRunCompleted"
        assert await until(lambda: _namings() == 2)
    assert compiled.count == 0
