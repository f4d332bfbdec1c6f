"""The Cirkelline team as plain agno builds it, for the comparison scenarios.

Why: bare agno, AgentOS and the sync "before" harness must run *the same team* as
Cirkelline (same leader instructions, same five specialists, same team flags) so that any
difference in CPU or latency comes from the serving stack, not from the prompt. The
specialist definitions are imported from ``chat.team`` rather than copied, so the
comparison follows the product when its prompts change.

What differs on purpose: models are agno's stock ``OpenAILike`` (no Cirkelline retry layer,
no shared-client cache) pointed at the fake provider, and storage is whatever the scenario
passes (none for bare agno, agno's ``SqliteDb`` / ``PostgresDb`` for AgentOS).

``chat.team`` imports Django models (its storage adapter), so Django is set up first with the
project settings; nothing here touches the database.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any

FAKE_MODEL_ID = "fake"


def _django_ready() -> None:
    """Configure Django just enough to import ``chat.team`` (settings + app registry).

    Without a configured ``CIRKELLINE_VAR_DIR`` / ``DJANGO_SECRET_KEY`` the settings module would
    write a secret key into the project's ``var/``; a throwaway key and a fixed directory under
    the system temp dir keep this process from writing anything."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    os.environ.setdefault("CIRKELLINE_VAR_DIR", os.path.join(tempfile.gettempdir(), "cirkelline-bench-var"))
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()


def openai_like(base_url: str, *, timeout: float = 60.0) -> Any:
    """agno's stock OpenAI-compatible model against the fake provider."""
    from agno.models.openai import OpenAILike

    return OpenAILike(
        id=FAKE_MODEL_ID,
        name="OpenAILike",
        base_url=base_url,
        api_key="not-needed",
        max_retries=0,
        timeout=timeout,
    )


def build_team(base_url: str, *, db: Any = None) -> Any:
    """The Cirkelline team (leader + five specialists) on stock agno ``OpenAILike`` models.

    Mirrors ``chat.team.build_cirkelline_team`` flag for flag, except the models and ``db``.
    """
    _django_ready()
    from agno.agent import Agent
    from agno.team import Team
    from agno.team.mode import TeamMode

    from chat.agents.specialists import LEADER_INSTRUCTIONS, SPECIALISTS
    from chat.agents.team import CIRKELLINE_TEAM_ID

    members = [
        Agent(
            id=spec.id,
            name=spec.name,
            role=spec.role,
            instructions=list(spec.instructions),
            model=openai_like(base_url),
            markdown=True,
            telemetry=False,
        )
        for spec in SPECIALISTS
    ]
    return Team(
        id=CIRKELLINE_TEAM_ID,
        name="Cirkelline",
        description="Cirkelline answers directly or delegates to research, audio, video, image and document "
        "specialists.",
        mode=TeamMode.coordinate,
        model=openai_like(base_url),
        members=members,
        instructions=list(LEADER_INSTRUCTIONS),
        db=db,
        add_history_to_context=True,
        num_history_runs=5,
        stream_member_events=True,
        store_member_responses=True,
        markdown=True,
        telemetry=False,
        retries=0,
    )
