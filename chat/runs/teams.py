"""The teams the run service runs: chat.agents' builders, given Cirkelline's storage adapter.

chat.agents never imports chat.storage (the two are independent); this is where they meet. A run
gets a team built for it alone (`team_for_run`); the process-wide prototype only describes a team
(GET /teams, the chat page) and is never run.
"""

from __future__ import annotations

import functools
from typing import Any

from chat.agents import team as agents_team
from chat.agents.personal import ForUser
from chat.storage.agno_db import DjangoAgnoDb

from .delegation import Member
from .knowledge import search as search_documents

# Stateless: every call reaches the database through chat.storage.executor.
DB = DjangoAgnoDb()


def team_for_run(team_id: str, *, deep_research: bool = False, user: ForUser | None = None) -> Any:
    """A fresh agno Team of its own for one run, storing through Cirkelline's database, told about `user`."""
    return agents_team.build_team(team_id, db=DB, deep_research=deep_research, user=user,
                                  documents=search_documents)


@functools.cache
def prototype(team_id: str) -> Any:
    """The process-wide prototype of a team (describes it; never run). TeamNotFound if unknown."""
    return agents_team.build_team(agents_team.resolve_team(team_id), db=DB)


def team_members(team_id: str) -> list[Member]:
    """The team's members as the delegation-failure detector knows them (id, name, role)."""
    return [Member(str(m.id or ""), str(m.name or ""), str(getattr(m, "role", "") or ""))
            for m in prototype(team_id).members if getattr(m, "id", None)]


def team_name(team_id: str) -> str:
    return prototype(team_id).name


def describe_team(team_id: str) -> dict:
    """AgentOS' TeamSummaryResponse fields for GET /teams."""
    return agents_team.describe_team(prototype(team_id))


def describe_team_detail(team_id: str) -> dict:
    """AgentOS' TeamResponse fields for GET /teams/{team_id}."""
    return agents_team.describe_team_detail(prototype(team_id))
