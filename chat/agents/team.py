"""The Cirkelline team as agno objects: built afresh for every run, and described for GET /teams.

Every run gets a team built for it alone (its own Team, Agent and Model objects; only the
stateless storage adapter and the per-event-loop provider SDK clients are shared), and its
per-run configuration (deep research, the user it answers: chat.agents.personal) is built in.
Concurrent runs never see each other's configuration and nothing a run does to its team outlives
the run.

Why built rather than `prototype.deep_copy()`: the same isolation for a fraction of the CPU,
and deep_copy shares Model objects between copies (docs/PERFORMANCE.md has the figures).

The storage adapter is passed in (`db`) by whoever runs the team, the run service: chat.agents
never imports chat.storage. The models come from `model_factory`, Cirkelline's providers by
default; the benchmark passes agno's stock models to run this very team (bench/teams.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agno.agent import Agent
from agno.models.base import Model
from agno.team import Team
from agno.team.mode import TeamMode
from agno.tools.reasoning import ReasoningTools
from django.conf import settings

from chat.errors import TeamNotFound

from .delegation_tool import share_delegation_derivations
from .hitl import leader_instructions, leader_tools
from .knowledge import LEADER_DOCUMENT_INSTRUCTIONS
from .knowledge import search_tool as documents_tool
from .memory import LEADER_MEMORY_INSTRUCTIONS, MEMORY_AGENT, memory_manager, search_tool
from .personal import ForUser, run_notes, user_section
from .providers import ModelSpec, build_model, model_spec
from .specialists import (
    DEEP_RESEARCH_LEADER,
    DEEP_RESEARCH_SPECIALIST,
    LEADER_INSTRUCTIONS,
    SAFETY_RULES,
    SPECIALISTS,
    Specialist,
)

CIRKELLINE_TEAM_ID = "cirkelline"

# (label, spec) -> the agno Model for one agent of the team; label is "leader" or a member id.
ModelFactory = Callable[[str, ModelSpec], Model]


def _member(spec: Specialist, model: ModelSpec, model_factory: ModelFactory, *, deep_research: bool) -> Agent:
    instructions = list(spec.instructions)
    tools: list = []
    agent_model = model_factory(spec.id, model)
    if deep_research and spec.id == "research-specialist":
        instructions += DEEP_RESEARCH_SPECIALIST
        tools.append(ReasoningTools(enable_think=True, enable_analyze=True))
        # Gemini can ground research in Google Search; other providers keep their defaults.
        if hasattr(agent_model, "search") and model.provider in ("google", "gemini"):
            agent_model.search = True
    return Agent(
        id=spec.id,
        name=spec.name,
        role=spec.role,
        instructions=instructions,
        tools=tools or None,
        model=agent_model,
        markdown=True,
        telemetry=False,
    )


def build_cirkelline_team(model: ModelSpec | None = None, *, db: Any = None, deep_research: bool = False,
                          model_factory: ModelFactory = build_model, user: ForUser | None = None,
                          documents: Callable | None = None) -> Team:
    """The Cirkelline team, for one run (or to describe it), storing through `db` (an agno AsyncBaseDb).

    `user`: whom the run answers (chat.agents.personal): their name, local time and preferences
    end the leader's prompt, after its instructions and rules; with their memories on, the leader
    may store and search them (chat.agents.memory). None (describing the team): none of that.
    `documents`: the run service's document search, for the leader's `search_my_documents` tool
    (chat.agents.knowledge); None: no such tool.
    """
    model = model or model_spec()
    share_delegation_derivations()  # once per process: the delegation tool's schema derived once
    instructions = list(LEADER_INSTRUCTIONS) + list(SAFETY_RULES)
    instructions += list(DEEP_RESEARCH_LEADER) if deep_research else []
    instructions += leader_instructions(deep_research=deep_research)  # asking the user (chat.agents.hitl)
    if user is not None:
        instructions += run_notes(previous_run_cancelled=user.previous_run_cancelled)
    memory: dict[str, Any] = {}
    # Tools that pause the run for its user (chat.agents.hitl): a question, a confirmation.
    tools = leader_tools(deep_research=deep_research)
    if user is not None and user.profile.memories_enabled:  # chat.agents.memory
        instructions += list(LEADER_MEMORY_INSTRUCTIONS)
        memory = {"memory_manager": memory_manager(model_factory(MEMORY_AGENT, model), db),
                  "enable_agentic_memory": True, "add_memories_to_context": False}
        tools.append(search_tool(db))
    if user is not None and documents is not None:  # chat.agents.knowledge
        instructions += list(LEADER_DOCUMENT_INSTRUCTIONS)
        tools.append(documents_tool(documents))
    return Team(
        id=CIRKELLINE_TEAM_ID,
        name="Cirkelline",
        description="Cirkelline answers directly or delegates to research, audio, video, image and document "
        "specialists.",
        mode=TeamMode.coordinate,
        model=model_factory("leader", model),
        members=[_member(spec, model, model_factory, deep_research=deep_research) for spec in SPECIALISTS],
        instructions=instructions,
        additional_context=user_section(user.profile, user.username) if user is not None else None,
        db=db,
        add_history_to_context=True,
        num_history_runs=settings.CIRKELLINE_HISTORY_RUNS,
        stream_member_events=True,
        # Member runs are stored as rows of their own; embedding them in the team run's stored
        # payload too (AgentOS does) would serialise and store every member answer twice.
        store_member_responses=False,
        markdown=True,
        telemetry=False,
        retries=0,
        tool_call_limit=12 if deep_research else None,
        tools=tools,
        **memory,
    )


_BUILDERS: dict[str, Callable[..., Team]] = {CIRKELLINE_TEAM_ID: build_cirkelline_team}


def team_ids() -> list[str]:
    return list(_BUILDERS)


def resolve_team(team_id: str) -> str:
    """`team_id` if there is such a team, else TeamNotFound (404). Transports call it once per request."""
    if team_id not in _BUILDERS:
        raise TeamNotFound(team_id)
    return team_id


def build_team(team_id: str, *, db: Any, deep_research: bool = False, user: ForUser | None = None,
               documents: Callable | None = None) -> Team:
    """A team of its own for one run (of a resolved team id), configured for that run and its user."""
    try:
        build = _BUILDERS[team_id]
    except KeyError:
        raise TeamNotFound(team_id) from None
    return build(db=db, deep_research=deep_research, user=user, documents=documents)


def _model_summary(model: Model | None) -> dict | None:
    return {"id": model.id, "provider": model.get_provider(), "name": model.name} if model else None


def describe_team(team: Team) -> dict:
    """AgentOS' TeamSummaryResponse fields for GET /teams."""
    return {
        "id": team.id,
        "name": team.name,
        "description": team.description,
        "db_id": team.db.id if team.db else None,
        "mode": team.mode.value if team.mode else None,
        "model": _model_summary(team.model),
        "metadata": None,
        "sandboxed": False,
    }


def describe_team_detail(team: Team) -> dict:
    """AgentOS' TeamResponse fields for GET /teams/{team_id}."""
    members = [{"id": member.id, "name": member.name, "role": member.role, "model": _model_summary(member.model)}
               for member in team.members or []]
    return {
        **describe_team(team),
        "role": None,
        "instructions": list(team.instructions or []),
        "members": members,
        "session_table": "chat_chatsession",
    }
