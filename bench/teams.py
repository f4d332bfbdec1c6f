"""The Cirkelline team on agno's stock models, for the comparison scenarios, built by the product.

Why: bare agno, AgentOS and the sync "before" harness must run *the same team* as Cirkelline
(same leader instructions, same five specialists, same team flags) so that any difference in
CPU or latency comes from the serving stack, not from the team. So the team is built by the
product's own builder (`chat.agents.team.build_cirkelline_team`): one source of truth, nothing
here to drift from it.

What differs on purpose, through the builder's parameters: models are agno's stock `OpenAILike`
(`model_factory`: no Cirkelline retry layer, no shared-client cache) pointed at the fake
provider, and storage is whatever the scenario passes (`db`: none for bare agno, agno's
`SqliteDb` / `PostgresDb` for AgentOS).

The builder reads Cirkelline's settings (e.g. the history length), so Django is set up first
with the project settings; nothing here touches the database.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any

FAKE_MODEL_ID = "fake"


def _django_ready() -> None:
    """Configure Django just enough to build the team (settings + app registry).

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
    """The Cirkelline team (leader + five specialists), as the product builds it, on stock agno
    ``OpenAILike`` models against `base_url`, storing through `db` (an agno database, or None)."""
    _django_ready()
    from chat.agents.providers import ModelSpec
    from chat.agents.team import build_cirkelline_team

    return build_cirkelline_team(ModelSpec("openai-like", FAKE_MODEL_ID), db=db,
                                 model_factory=lambda label, spec: openai_like(base_url))
