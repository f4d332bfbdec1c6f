"""The naming call: the configured model asked for a chat's title, through agno and the retry layer.

One call of the model chat.agents.providers builds for the label "naming" (agno's
`Model.aresponse`: no storage, no tools, no history): the same provider, SDK clients and retry
layer (chat.agents.retry) as a run's, so retries, deadlines and the billing of cut-off calls work
as in a run. The prompt is the one an agno Agent with these instructions sends (its system
message lists them as "- " lines); the Agent itself is not built, its run machinery (a run
output, events, metrics, a session) cost about as much CPU as the call (docs/PERFORMANCE.md).
The caller (chat.runs.naming) sets a RunContext of the call's own, bounds it in time, bills it
and stores the title; this module only asks and reports what the call cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agno.models.message import Message
from agno.utils.log import log_warning

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


# The system message an agno Agent writes for a list of instructions (agno 3.1.10, markdown off).
SYSTEM_MESSAGE = "\n".join(f"- {line}" for line in INSTRUCTIONS)


async def ask_for_title(*, first_message: str, answer: str, run_id: str, user_id: int,
                        spec: ModelSpec | None = None) -> TitleReply:
    """Ask the model (the configured one unless `spec`) for the title of a chat; never raises for a
    provider failure (`failed`). Cancelling the calling task cuts the call off (the retry layer
    bills what it had consumed on the current RunContext)."""
    spec = spec or model_spec()
    model = build_model(NAMING_LABEL, spec)
    messages = [Message(role="system", content=SYSTEM_MESSAGE),
                Message(role="user", content=naming_prompt(first_message, answer))]
    identity = {"model": str(model.id or ""), "provider": str(model.provider or "")}
    try:
        response = await model.aresponse(messages=messages)
    except Exception as error:  # noqa: BLE001 - as agno's Agent: a failed call is reported, not raised
        log_warning(f"naming call {run_id} of user {user_id} failed: {type(error).__name__}: {error}")
        return TitleReply(title=None, calls=0, failed=True, **identity)
    usage = response.response_usage
    tokens = {name: int(getattr(usage, name, 0) or 0) for name in TOKEN_FIELDS}
    content = response.content
    return TitleReply(title=clean_title(content if isinstance(content, str) else None), tokens=tokens, calls=1,
                      provider_cost=getattr(usage, "cost", None), **identity)
