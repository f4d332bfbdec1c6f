"""The agno seam: the Cirkelline team, its specialists, and a fresh team for every run.

Every run gets a team built for it alone (its own Team, Agent and Model objects; only the
stateless storage adapter and the per-event-loop provider SDK clients are shared), and its
per-run configuration (deep research) is built in. Concurrent runs never see each other's
configuration and nothing a run does to its team outlives the run.

Why built rather than `prototype.deep_copy()`: the result is the same isolation, but agno's
deep_copy walks every field of the team and its five members (4.45 ms a run on the reference
machine) while building costs 0.16 ms, and deep_copy shares Model objects between copies
(see docs/PERFORMANCE.md). The prototype remains for describing the team (GET /teams).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from agno.agent import Agent
from agno.team import Team
from agno.team.mode import TeamMode
from agno.tools.reasoning import ReasoningTools
from django.conf import settings

from .errors import TeamNotFound
from .providers import ModelSpec, build_model, model_spec
from .storage.agno_db import DjangoAgnoDb

CIRKELLINE_TEAM_ID = "cirkelline"


@dataclass(frozen=True)
class Specialist:
    id: str
    name: str
    role: str
    instructions: tuple[str, ...]


SPECIALISTS: tuple[Specialist, ...] = (
    Specialist(
        id="research-specialist",
        name="Research Specialist",
        role="Researches questions of fact and explains findings with their sources and uncertainty",
        instructions=(
            "Answer the task you are given with facts, not guesses. Separate what is well established "
            "from what is disputed or uncertain.",
            "When the task depends on recent events or figures you cannot verify, say so plainly and "
            "say what would need checking.",
            "Structure longer answers as: a one-paragraph answer first, then the supporting points, "
            "then sources or the kind of source that would confirm them.",
        ),
    ),
    Specialist(
        id="audio-specialist",
        name="Audio Specialist",
        role="Works with speech, music and sound: transcripts, summaries of recordings, audio production advice",
        instructions=(
            "When audio is attached, work from it: transcribe or summarise what is said, name the "
            "speakers if they can be told apart, and note anything inaudible instead of inventing it.",
            "Without an attachment, help with the audio task described: recording and editing advice, "
            "podcast structure, music theory, formats and codecs.",
            "Give timestamps (mm:ss) when you refer to a moment in a recording.",
        ),
    ),
    Specialist(
        id="video-specialist",
        name="Video Specialist",
        role="Works with video: describes and summarises footage, scenes and editing, plans video content",
        instructions=(
            "When a video is attached, describe what happens scene by scene with timestamps, then "
            "summarise it in a few sentences.",
            "Without an attachment, help plan, script or edit the video described: shot lists, "
            "storyboards, pacing, formats and export settings.",
            "Never claim to have seen details that are not in the material you were given.",
        ),
    ),
    Specialist(
        id="image-specialist",
        name="Image Specialist",
        role="Works with images: describes, compares and extracts text from pictures, advises on visual design",
        instructions=(
            "When an image is attached, describe its content precisely: objects, people (without "
            "identifying real individuals), text in the image, layout and notable details.",
            "Without an attachment, help with the visual task described: composition, design feedback, "
            "prompts for image generation, formats and resolutions.",
            "If the image is unclear or too small to read, say what cannot be made out.",
        ),
    ),
    Specialist(
        id="document-specialist",
        name="Document Specialist",
        role="Works with documents: summarises, extracts data from and drafts reports, contracts and letters",
        instructions=(
            "When a document is attached, summarise it first (purpose, key points, obligations, dates, "
            "amounts), then answer the specific question asked about it.",
            "Quote the exact wording when the task is about what a document says.",
            "When drafting, match the tone and format the user asked for and keep placeholders such as "
            "[NAME] for facts you were not given.",
        ),
    ),
)

LEADER_INSTRUCTIONS = (
    "You are Cirkelline, a helpful assistant who coordinates a team of specialists.",
    "Answer simple questions, greetings and arithmetic yourself, directly and briefly.",
    "Delegate a task to the specialist whose role fits it: research, audio, video, images or documents. "
    "Give the specialist a self-contained task including every detail from the conversation it needs.",
    "When attachments come with the message, delegate to the specialist for that kind of media.",
    "After a specialist answers, give the user one clear reply built on that answer; do not just repeat it, "
    "and do not mention internal delegation mechanics.",
)

DEEP_RESEARCH_LEADER = (
    "Deep research mode is on for this message: plan the research before answering. Break the question into "
    "sub-questions and delegate them to the Research Specialist (and other specialists where media is "
    "involved), then reconcile their answers, noting agreements, conflicts and open questions.",
)

DEEP_RESEARCH_SPECIALIST = (
    "Deep research mode: work step by step. Use the think tool to plan, investigate each sub-question, "
    "use the analyze tool to check your findings against each other, then report findings with the "
    "confidence you have in each and what would change your conclusion.",
)


_DB = DjangoAgnoDb()  # stateless: every call reaches the database through chat.storage.executor


def _member(spec: Specialist, model: ModelSpec, *, deep_research: bool) -> Agent:
    instructions = list(spec.instructions)
    tools: list = []
    agent_model = build_model(spec.id, model)
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


def build_cirkelline_team(model: ModelSpec | None = None, *, deep_research: bool = False) -> Team:
    """The Cirkelline team, for one run (or as the process's prototype)."""
    model = model or model_spec()
    instructions = list(LEADER_INSTRUCTIONS) + (list(DEEP_RESEARCH_LEADER) if deep_research else [])
    return Team(
        id=CIRKELLINE_TEAM_ID,
        name="Cirkelline",
        description="Cirkelline answers directly or delegates to research, audio, video, image and document "
        "specialists.",
        mode=TeamMode.coordinate,
        model=build_model("leader", model),
        members=[_member(spec, model, deep_research=deep_research) for spec in SPECIALISTS],
        instructions=instructions,
        db=_DB,
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
    )


_BUILDERS = {CIRKELLINE_TEAM_ID: build_cirkelline_team}


@functools.cache
def prototype(team_id: str) -> Team:
    """The process-wide prototype of a team; never run directly (see `team_for_run`)."""
    try:
        return _BUILDERS[team_id]()
    except KeyError:
        raise TeamNotFound(team_id) from None


def team_ids() -> list[str]:
    return list(_BUILDERS)


def resolve_team(team_id: str) -> str:
    """`team_id` if there is such a team, else TeamNotFound (404). Transports call it once per request."""
    if team_id not in _BUILDERS:
        raise TeamNotFound(team_id)
    return team_id


def team_for_run(team_id: str, *, deep_research: bool = False) -> Team:
    """A team of its own for one run, configured for that run."""
    try:
        build = _BUILDERS[team_id]
    except KeyError:
        raise TeamNotFound(team_id) from None
    return build(deep_research=deep_research)


def media_for_agno(attachments) -> dict:
    """agno media keyword arguments (images, audio, videos, files) for a run's attachments."""
    from agno.media import Audio, File, Image, Video

    media: dict[str, list] = {}
    for item in attachments:
        fmt = item.mime_type.split("/")[-1]
        if item.kind == "image":
            media.setdefault("images", []).append(Image(content=item.content, mime_type=item.mime_type, format=fmt))
        elif item.kind == "audio":
            media.setdefault("audio", []).append(Audio(content=item.content, mime_type=item.mime_type, format=fmt))
        elif item.kind == "video":
            media.setdefault("videos", []).append(Video(content=item.content, mime_type=item.mime_type, format=fmt))
        else:
            media.setdefault("files", []).append(
                File(content=item.content, filename=item.name, mime_type=item.mime_type)
            )
    return media


def run_deadline(deep_research: bool) -> float:
    return settings.CIRKELLINE_DEEP_RESEARCH_TIMEOUT if deep_research else settings.CIRKELLINE_RUN_TIMEOUT


def describe_team(team_id: str) -> dict:
    """AgentOS' TeamSummaryResponse fields for GET /teams."""
    team = prototype(team_id)
    model = team.model
    return {
        "id": team.id,
        "name": team.name,
        "description": team.description,
        "db_id": team.db.id if team.db else None,
        "mode": team.mode.value if team.mode else None,
        "model": {"id": model.id, "provider": model.get_provider(), "name": model.name} if model else None,
        "metadata": None,
        "sandboxed": False,
    }


def describe_team_detail(team_id: str) -> dict:
    """AgentOS' TeamResponse fields for GET /teams/{team_id}."""
    team = prototype(team_id)
    summary = describe_team(team_id)
    members = []
    for member in team.members or []:
        m = member.model
        members.append(
            {
                "id": member.id,
                "name": member.name,
                "role": member.role,
                "model": {"id": m.id, "provider": m.get_provider(), "name": m.name} if m else None,
            }
        )
    return {
        **summary,
        "role": None,
        "instructions": list(team.instructions or []),
        "members": members,
        "session_table": "chat_chatsession",
    }
