"""The detector against real agno 3.1.10: its event names exist, and real streams are read right.

A small agno Team with scripted models (no provider) produces the events; the detector reads
the objects as they are yielded and the same events as dicts (`to_dict()`, what is stored).
"""

from __future__ import annotations

from agno.agent import Agent
from agno.run.agent import RunEvent
from agno.run.team import TeamRunEvent
from agno.team import Team
from agno.team.mode import TeamMode

from chat.agents.runtime import DELEGATE_TOOL
from chat.agents.scripted import ScriptedModel, ToolCall, Turn
from chat.runs import delegation
from chat.runs.delegation import Member, detect

MEMBERS = [Member("research-specialist", "Research Specialist")]


def test_every_event_name_the_detector_reads_is_an_agno_3_1_event():
    """Guards against the failure of the system we replace: detectors matching event names of an older agno."""
    agno_names = {e.value for e in RunEvent} | {e.value for e in TeamRunEvent}
    used = {delegation.TOOL_STARTED, delegation.TOOL_COMPLETED, delegation.TOOL_ERROR, delegation.LEADER_CONTENT,
            delegation.LEADER_COMPLETED, *delegation.MEMBER_STARTED, *delegation.MEMBER_COMPLETED,
            *delegation.MEMBER_ERROR, *delegation.MEMBER_TERMINAL}
    assert used <= agno_names, used - agno_names


def _team(leader_script, member_script) -> Team:
    member = Agent(id="research-specialist", name="Research Specialist", telemetry=False,
                   model=ScriptedModel(id="m", label="research-specialist", script=member_script))
    return Team(id="t", name="Leader", members=[member], mode=TeamMode.coordinate, telemetry=False,
                model=ScriptedModel(id="l", label="leader", script=leader_script), stream_member_events=True)


async def _events(team: Team):
    events = [e async for e in team.arun("Tell me about Copenhagen", stream=True, stream_events=True)]
    run_id = next(e.run_id for e in events if e.event == "TeamRunStarted")
    return events, run_id


def _both_ways(events, run_id) -> set:
    as_objects = {(f.kind, f.member) for f in detect(events, run_id=run_id, members=MEMBERS)}
    as_dicts = {(f.kind, f.member) for f in detect([e.to_dict() for e in events], run_id=run_id, members=MEMBERS)}
    assert as_objects == as_dicts
    return as_objects


def _delegate_to(member_id: str, task: str = "Research Copenhagen"):
    def script(call):
        if call.tool_results:
            return Turn(text="Here is what I found.")
        return Turn(tool_calls=[ToolCall(DELEGATE_TOOL, {"member_id": member_id, "task": task})])
    return script


async def test_a_sound_real_delegation_has_no_failure():
    events, run_id = await _events(_team(_delegate_to("research-specialist"), lambda c: Turn(text="Founded 1167.")))
    assert _both_ways(events, run_id) == set()


async def test_a_real_unknown_member_is_detected_from_agnos_answer():
    events, run_id = await _events(_team(_delegate_to("legal-specialist"), lambda c: Turn(text="unused")))
    assert _both_ways(events, run_id) == {("unknown_member", "legal-specialist")}


async def test_a_real_empty_member_answer_is_detected():
    events, run_id = await _events(_team(_delegate_to("research-specialist"), lambda c: Turn(text="")))
    assert _both_ways(events, run_id) == {("member_empty_result", "research-specialist")}


async def test_a_real_announcement_without_delegation_is_detected():
    leader = lambda c: Turn(text="I'll ask the Research Specialist to look into Copenhagen's history.")  # noqa: E731
    events, run_id = await _events(_team(leader, lambda c: Turn(text="unused")))
    assert _both_ways(events, run_id) == {("announced_not_executed", "research-specialist")}


async def test_a_real_member_error_is_detected():
    """Guards against reporting a crashed member twice (also as an empty result): red before the fix."""
    def member(call):
        raise RuntimeError("member model crashed")
    events, run_id = await _events(_team(_delegate_to("research-specialist"), member))
    assert _both_ways(events, run_id) == {("member_error", "research-specialist")}
