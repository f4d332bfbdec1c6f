"""The naming call: the configured model asked for a chat's title, through agno and the retry layer.

One small agno Agent per call (no storage, no tools, no history), with the model
chat.agents.providers builds for the label "naming": the same provider, SDK clients and retry
layer (chat.agents.retry) as a run's, so retries, deadlines and the billing of cut-off calls work
as in a run. The caller (chat.runs.naming) sets a RunContext of the call's own, bounds it in time,
bills it and stores the title; this module only asks and reports what the call cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agno.agent import Agent
from agno.run.base import RunStatus as AgnoRunStatus

from .providers import ModelSpec, build_model, model_spec
from .titles import INSTRUCTIONS, NAMING_LABEL, clean_title, naming_prompt

TOKEN_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
                "cache_write_tokens")


@dataclass
class TitleReply:
    """What a naming call gave: the cleaned title (None: no usable one), and its model and tokens."""

    title: str | None
    model: str
    provider: str
    # Tokens agno reported for the call (agno's names); calls cut off are on the RunContext.
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_FIELDS, 0))
    # Provider calls agno reported: 1 for an answered call, 0 when it failed.
    calls: int = 0
    # The provider's cost for the call, when it reports one (OpenRouter-style usage.cost), USD.
    provider_cost: float | None = None
    failed: bool = False


def _naming_agent(spec: ModelSpec) -> Agent:
    return Agent(id=NAMING_LABEL, name="Chat naming", model=build_model(NAMING_LABEL, spec),
                 instructions=list(INSTRUCTIONS), markdown=False, telemetry=False, retries=0)


async def ask_for_title(*, first_message: str, answer: str, run_id: str, user_id: int,
                        spec: ModelSpec | None = None) -> TitleReply:
    """Ask the model (the configured one unless `spec`) for the title of a chat; never raises for a
    provider failure (`failed`). Cancelling the calling task cuts the call off (the retry layer
    bills what it had consumed on the current RunContext)."""
    spec = spec or model_spec()
    agent = _naming_agent(spec)
    model = agent.model
    output = await agent.arun(input=naming_prompt(first_message, answer), stream=False, run_id=run_id,
                              user_id=str(user_id))
    metrics = getattr(output, "metrics", None)
    tokens = {name: int(getattr(metrics, name, 0) or 0) for name in TOKEN_FIELDS}
    failed = getattr(output, "status", None) != AgnoRunStatus.completed
    return TitleReply(
        title=None if failed else clean_title(output.content if isinstance(output.content, str) else None),
        model=str(model.id or ""), provider=str(model.provider or ""), tokens=tokens,
        calls=0 if failed and not tokens["total_tokens"] else 1,
        provider_cost=getattr(metrics, "cost", None), failed=failed,
    )
