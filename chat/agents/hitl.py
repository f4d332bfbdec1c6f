"""Human in the loop: the leader's tools that pause a run for its user, and continuing a paused run.

agno pauses a team run when the leader calls a tool that needs its user first:
- `get_user_input` (agno's `UserControlFlowTools`): the model names the fields it needs (a form);
- a tool made with `requires_confirmation=True`: the user confirms or cancels the call. Cirkelline's
  is `start_deep_research`, offered outside deep research mode: the leader asks before it spends
  minutes (and money) researching.

The run then ends with agno's `TeamRunPaused` event, its `requirements` saying what is asked, and
agno stores it with status PAUSED (its messages and requirements in the payload). Continuing it
(`continue_team_run`) is `team.acontinue_run` on a team built afresh, with the stored requirements
carrying the user's answers: `bind_answers` takes only the decisions from what a client sent (a
confirmation, a note, field values), never a tool, its arguments or a new requirement, so a
client can answer what was asked and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agno.run.requirement import RunRequirement
from agno.tools import tool
from agno.tools.user_control_flow import UserControlFlowTools

from chat.errors import BadRequest

USER_INPUT_TOOL = "get_user_input"
DEEP_RESEARCH_TOOL = "start_deep_research"

USER_INPUT_INSTRUCTION = (
    f"When only the user can tell you something you need (a choice, a missing detail), call `{USER_INPUT_TOOL}` "
    "with just those fields instead of asking in prose or guessing; never ask for the same field twice, and "
    "treat a field left empty as not given.")
DEEP_RESEARCH_CONFIRM_INSTRUCTION = (
    "When a request would need a long deep research (many sources, several steps), call "
    f"`{DEEP_RESEARCH_TOOL}` first: the user confirms or declines it before it starts. If they "
    "decline, answer briefly from what you know.")
# The leader's instructions about asking its user, outside deep research mode (in it, the
# confirmation tool is not offered: leader_instructions).
LEADER_HITL_INSTRUCTIONS = (USER_INPUT_INSTRUCTION, DEEP_RESEARCH_CONFIRM_INSTRUCTION)


def leader_instructions(*, deep_research: bool) -> list[str]:
    """What the leader is told about the tools of `leader_tools`."""
    return [USER_INPUT_INSTRUCTION] if deep_research else list(LEADER_HITL_INSTRUCTIONS)


@tool(requires_confirmation=True)
def start_deep_research(topic: str) -> str:
    """Start a long, thorough research on a topic. It takes minutes and costs more than a normal answer,
    so the user is asked to confirm before it starts.

    Args:
        topic: what to research, in one sentence.
    """
    return (f"The user confirmed a deep research on: {topic}. Delegate it to the Research Specialist with a "
            "thorough brief (sources, uncertainty, several angles), then summarise the findings.")


# agno's toolkit is stateless (agno copies its functions into each run), so one serves every team:
# built per run, its method was introspected afresh every run (tests/agents/test_tool_schemas.py).
# Its own instructions (~2 300 characters, ~575 tokens on every leader call) are replaced by the
# USER_INPUT_INSTRUCTION: with them a plain leader call's prompt grew by ~630 tokens (the
# scripted model's count), now by ~120.
_USER_INPUT_TOOLS = UserControlFlowTools(add_instructions=False)


def leader_tools(*, deep_research: bool) -> list:
    """The leader's tools that can pause a run: agno's user-input tool, and outside deep research
    mode the confirmation before one."""
    tools: list = [_USER_INPUT_TOOLS]
    if not deep_research:
        tools.append(start_deep_research)
    return tools


def _decision(answer: dict, stored: dict) -> dict:
    """The stored requirement dict with the client's decision on it (and nothing else of the client's)."""
    bound = {**stored, "tool_execution": dict(stored.get("tool_execution") or {})}
    tool_execution = bound["tool_execution"]
    confirmation = answer.get("confirmation")
    if confirmation is None and isinstance(answer.get("tool_execution"), dict):
        confirmation = answer["tool_execution"].get("confirmed")
    if tool_execution.get("requires_confirmation"):
        if confirmation is not None and not isinstance(confirmation, bool):
            raise BadRequest(400, "'confirmation' must be true or false.")
        if confirmation is not None:
            bound["confirmation"] = confirmation
            tool_execution["confirmed"] = confirmation
            note = answer.get("confirmation_note")
            if note is not None:
                if not isinstance(note, str) or len(note) > 2000:
                    raise BadRequest(400, "'confirmation_note' must be a string of at most 2000 characters.")
                bound["confirmation_note"] = tool_execution["confirmation_note"] = note
    schema = stored.get("user_input_schema") or tool_execution.get("user_input_schema")
    if schema:
        values = _field_values(answer)
        fields = []
        for field in schema:
            value = values.get(field.get("name"), field.get("value"))
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise BadRequest(400, f"The value of '{field.get('name')}' must be a string, number or boolean.")
            if isinstance(value, str) and len(value) > 10_000:
                raise BadRequest(413, f"The value of '{field.get('name')}' is too long (at most 10000 characters).")
            fields.append({**field, "value": value})
        bound["user_input_schema"] = fields
        tool_execution["user_input_schema"] = [dict(f) for f in fields]
        if all(f.get("value") is not None for f in fields):
            tool_execution["answered"] = True
    return bound


def _field_values(answer: dict) -> dict:
    """A client's field values: from `user_input_schema` (agno's shape, at the top or in the tool
    execution) or a plain `values` object."""
    values: dict = {}
    for schema in ((answer.get("tool_execution") or {}).get("user_input_schema"), answer.get("user_input_schema")):
        if isinstance(schema, list):
            for field in schema:
                if isinstance(field, dict) and isinstance(field.get("name"), str) and field.get("value") is not None:
                    values[field["name"]] = field["value"]
    if isinstance(answer.get("values"), dict):
        values.update(answer["values"])
    return values


def bind_answers(stored: list[dict], answers: Any) -> list[dict]:
    """The paused run's stored requirements (dicts) with the client's answers on them.

    `answers`: what the client sent, a list of requirement objects in agno's shape
    (`RunRequirement.to_dict()`, as AgentOSClient sends them) or shortened to an `id` with the
    decision (`confirmation`, `confirmation_note`, `user_input_schema` or `values`). Each must
    name a stored requirement by `id` or by its tool call (`tool_execution.tool_call_id`), once.
    Raises BadRequest (400) otherwise. Requirements the client did not answer stay open (agno
    pauses the run again).
    """
    if not isinstance(answers, list) or not answers:
        raise BadRequest(400, "'requirements' must be a non-empty JSON array of the run's requirements, answered.")
    by_id = {r.get("id"): i for i, r in enumerate(stored) if r.get("id")}
    by_call = {(r.get("tool_execution") or {}).get("tool_call_id"): i for i, r in enumerate(stored)}
    bound = [dict(r) for r in stored]
    taken: set[int] = set()
    for answer in answers:
        if not isinstance(answer, dict):
            raise BadRequest(400, "Each requirement must be a JSON object.")
        index = by_id.get(answer.get("id"))
        if index is None:
            call = (answer.get("tool_execution") or {}).get("tool_call_id") if isinstance(
                answer.get("tool_execution"), dict) else None
            index = by_call.get(call) if call else None
        if index is None:
            raise BadRequest(400, "A requirement names nothing this run asked: send back the requirements of its "
                                  "TeamRunPaused event, answered.")
        if index in taken:
            raise BadRequest(400, "A requirement was answered twice.")
        taken.add(index)
        bound[index] = _decision(answer, stored[index])
    return bound


def open_requirements(requirements: list[dict]) -> list[dict]:
    """Of a paused run's stored requirements, those still waiting for their user."""
    return [r for r in requirements if not RunRequirement.from_dict(r).is_resolved()]


def continue_team_run(team: Any, *, run_id: str, session_id: str, user_id: int,
                      requirements: list[dict]) -> AsyncIterator[Any]:
    """agno's event stream of a paused team run continued with `requirements` (bind_answers): every
    event, then its TeamRunOutput, as `chat.agents.runtime.stream_team_run`."""
    return team.acontinue_run(
        run_id=run_id,
        session_id=session_id,
        user_id=str(user_id),
        requirements=[RunRequirement.from_dict(r) for r in requirements],
        stream=True,
        stream_events=True,
        yield_run_output=True,
    )
