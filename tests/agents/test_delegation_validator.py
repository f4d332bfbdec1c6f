"""The delegation tool's argument validator is built once per process for teams on Cirkelline's
models (chat/agents/delegation_tool.py `_arguments_validator`, `_validating_shim`), and validates
exactly as agno's own per-run `validate_call` wrapper does."""

from __future__ import annotations

import gc
import inspect
import weakref

import pytest
from agno.agent import Agent
from agno.team import Team
from agno.team._default_tools import _get_delegate_task_function
from agno.team.mode import TeamMode
from agno.tools.function import Function
from pydantic import ValidationError
from pydantic._internal import _validate_call

from chat.agents import delegation_tool
from chat.agents.providers import ModelSpec, ResilientScriptedModel
from chat.agents.runtime import DELEGATE_TOOL
from chat.agents.scripted import ScriptedModel, ToolCall, Turn
from chat.agents.team import build_cirkelline_team

MESSAGE = "Please research the history of Copenhagen"

# Arguments a model may send that pydantic rejects (lax mode: no int or list to str).
BAD_ARGUMENTS = [
    ((), {"member_id": "research-specialist"}),  # no task
    ((), {}),
    ((), {"member_id": 7, "task": "Research Copenhagen"}),
    ((), {"member_id": ["research-specialist"], "task": "Research Copenhagen"}),
    ((), {"member_id": "research-specialist", "task": None}),
    ((), {"member_id": "research-specialist", "task": "t", "extra": 1}),
    (("research-specialist", "t", "third"), {}),
    (("research-specialist",), {"member_id": "research-specialist", "task": "t"}),
]


@pytest.fixture
def fresh(monkeypatch):
    """An empty process-wide store, and the call validators pydantic builds, by their title."""
    monkeypatch.setattr(delegation_tool, "_derived", {})
    delegation_tool.share_delegation_derivations()
    built: list[str] = []
    create = _validate_call.ValidateCallWrapper._create_validators

    def counting_create(self):
        built.append(self.qualname)
        return create(self)

    monkeypatch.setattr(_validate_call.ValidateCallWrapper, "_create_validators", counting_create)
    return built


def _delegation_builds(built: list[str]) -> int:
    return sum(1 for name in built if name.endswith(("delegate_task_to_member", "delegate_task_to_members")))


def _tool(async_mode: bool, team: Team | None = None) -> Function:
    """agno's delegation tool as a run builds it (its closure captures nothing a test needs)."""
    team = team or build_cirkelline_team(ModelSpec("scripted", ""))
    return _get_delegate_task_function(team, None, None, None, {}, async_mode=async_mode)


async def _first(wrapper, args: tuple, kwargs: dict):
    """What calling the tool yields first, or the exception it raises, as agno's tool call sees it."""
    if inspect.isasyncgenfunction(wrapper):
        stream = wrapper(*args, **kwargs)
        try:
            return await anext(stream)
        finally:
            await stream.aclose()
    stream = wrapper(*args, **kwargs)
    try:
        return next(stream)
    finally:
        stream.close()


@pytest.mark.parametrize("async_mode", [True, False], ids=["async", "sync"])
async def test_the_wrapper_has_agnos_shape(fresh, async_mode):
    """Guards against a wrapper agno would route differently: agno dispatches tool calls on
    `inspect.isasyncgenfunction`, skips re-wrapping on `_wrapped_for_validation`, and reads the
    signature and docstring through `__wrapped__`."""
    ours = _tool(async_mode).entrypoint
    closure = ours.__wrapped__
    agnos = Function._wrap_callable_uncached(closure)
    assert ours is not agnos and ours.__code__.co_filename.endswith("chat/agents/delegation_tool.py")
    assert inspect.isasyncgenfunction(ours) == inspect.isasyncgenfunction(agnos) == async_mode
    assert ours._wrapped_for_validation is True and agnos._wrapped_for_validation is True
    assert agnos.__wrapped__ is closure
    for name in ("__name__", "__qualname__", "__module__", "__doc__"):
        assert getattr(ours, name) == getattr(agnos, name), name
    assert inspect.signature(ours) == inspect.signature(agnos)
    assert getattr(ours, "raw_function", None) is getattr(agnos, "raw_function", None)
    # agno passes the wrapper back through its cache (process_entrypoint): it stays itself and is
    # still recognised as the delegation tool's (its derivations shared too).
    assert Function._wrap_callable(ours) is ours
    assert delegation_tool._derivation_key(ours) is not None
    assert Function._wrap_callable(closure) is ours  # one wrapper per closure, as agno's cache keeps


@pytest.mark.parametrize("async_mode", [True, False], ids=["async", "sync"])
@pytest.mark.parametrize(("args", "kwargs"), BAD_ARGUMENTS)
async def test_bad_arguments_fail_as_agnos_wrapper_fails(fresh, async_mode, args, kwargs):
    """Guards against the shared validator describing the arguments differently from agno's (another
    schema, another title, failing at another point): the error the leader is shown would differ."""
    ours = _tool(async_mode).entrypoint
    agnos = Function._wrap_callable_uncached(ours.__wrapped__)
    with pytest.raises(ValidationError) as expected:
        await _first(agnos, args, kwargs)
    with pytest.raises(ValidationError) as got:
        await _first(ours, args, kwargs)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)
    assert got.value.title == expected.value.title
    assert got.value.errors() == expected.value.errors()


@pytest.mark.parametrize("async_mode", [True, False], ids=["async", "sync"])
@pytest.mark.parametrize(("args", "kwargs"), [
    ((), {"member_id": b"nobody", "task": "t"}),  # lax mode: bytes become str
    ((b"nobody", b"t"), {}),
    (("nobody",), {"task": bytearray(b"t")}),
    ((), {"task": "t", "member_id": "nobody"}),
])
async def test_the_closure_gets_the_arguments_agno_would_pass(fresh, async_mode, args, kwargs):
    """Guards against the shim calling the closure with other arguments than agno's validated call
    (raw instead of coerced values, positional and keyword mixed up): an unknown member's answer
    names the member_id the closure received."""
    ours = _tool(async_mode).entrypoint
    agnos = Function._wrap_callable_uncached(ours.__wrapped__)
    expected = await _first(agnos, args, kwargs)
    assert expected.startswith("Member with ID nobody not found")
    assert await _first(ours, args, kwargs) == expected


async def test_tools_after_the_first_build_no_validator(fresh):
    """Guards against pydantic's call validator being built for every run's closure (~6.7 % of the
    server's CPU under load, docs/PERFORMANCE.md)."""
    first = _tool(True)
    assert _delegation_builds(fresh) == 1
    validators = [v for k, v in delegation_tool._derived.items() if k[-1] == "validator"]
    assert len(validators) == 1
    later = [_tool(True) for _ in range(3)]
    assert _delegation_builds(fresh) == 1
    closures = {id(tool.entrypoint.__wrapped__) for tool in [first, *later]}
    assert len(closures) == 4  # each its own closure and wrapper, validated by one validator
    for tool in later:
        assert tool.entrypoint.__code__.co_freevars == ("function", "validate")
        cells = dict(zip(tool.entrypoint.__code__.co_freevars, tool.entrypoint.__closure__, strict=True))
        assert cells["validate"].cell_contents is validators[0]
    _tool(False)  # the sync closure is another code: a validator of its own, once
    _tool(False)
    assert _delegation_builds(fresh) == 2


async def _run(team) -> list:
    return [event async for event in team.arun(MESSAGE, stream=True, stream_events=True)]


async def test_runs_after_the_first_build_no_validator_and_still_delegate(fresh):
    """The product's team, run on the scripted model: the member answers in every run, and only the
    first run builds the delegation tool's validator."""
    for _ in range(3):
        events = await _run(build_cirkelline_team(ModelSpec("scripted", "")))
        assert events[-1].event == "TeamRunCompleted"
        team_run_id = events[0].run_id
        assert any(e.event == "RunStarted" and e.parent_run_id == team_run_id for e in events)
        assert any(e.event == "TeamToolCallCompleted" and e.tool.result for e in events)
    assert _delegation_builds(fresh) == 1


async def test_nothing_of_a_run_outlives_it(fresh, monkeypatch):
    """Guards against the shared validator (or anything else stored per process) keeping a run's
    closure, and through it the run's team, session and state."""
    closures: dict[int, weakref.ref] = {}
    teams: list[weakref.ref] = []
    key = delegation_tool._derivation_key

    def recording_key(entrypoint):
        if getattr(getattr(entrypoint, "__code__", None), "co_name", None) == "adelegate_task_to_member":
            closures.setdefault(id(entrypoint), weakref.ref(entrypoint))
        return key(entrypoint)

    monkeypatch.setattr(delegation_tool, "_derivation_key", recording_key)
    for _ in range(2):  # the first run builds the validator, the second uses it
        team = build_cirkelline_team(ModelSpec("scripted", ""))
        teams.append(weakref.ref(team))
        events = await _run(team)
        assert events[-1].event == "TeamRunCompleted"
        del team, events
    assert len(closures) == 2 and _delegation_builds(fresh) == 1
    gc.collect()
    assert [ref() for ref in closures.values()] == [None, None]
    assert [ref() for ref in teams] == [None, None]


def _leader_delegating(arguments: dict, seen: list):
    def script(call):
        if call.tool_results:
            seen.append(list(call.tool_results))
            return Turn(text="Done.")
        return Turn(tool_calls=[ToolCall(DELEGATE_TOOL, arguments)])
    return script


async def _tool_results(arguments: dict) -> list:
    seen: list = []
    member = Agent(id="research-specialist", name="Research Specialist", telemetry=False,
                   model=ScriptedModel(id="m", label="research-specialist", script=lambda c: Turn(text="1167.")))
    team = Team(id="t", name="Leader", members=[member], mode=TeamMode.coordinate, telemetry=False,
                model=ResilientScriptedModel(id="l", label="leader", script=_leader_delegating(arguments, seen)),
                stream_member_events=True)
    events = await _run(team)
    assert events[-1].event == "TeamRunCompleted"
    return seen


@pytest.mark.parametrize("arguments", [
    {"member_id": "research-specialist"},
    {"member_id": 7, "task": "Research Copenhagen"},
    {"member_id": "research-specialist", "task": "Research Copenhagen"},
])
async def test_the_leader_sees_what_agnos_wrapper_gives(fresh, monkeypatch, arguments):
    """agno's tool call (FunctionCall.aexecute) on the shared validator's wrapper: the leader is
    handed the same tool result (the member's answer, or agno's account of the ValidationError)
    as with agno's own per-run wrapper."""
    ours = [await _tool_results(arguments) for _ in range(2)]  # built, then shared
    assert _delegation_builds(fresh) == 1
    monkeypatch.setattr(delegation_tool, "_derivation_key", lambda entrypoint: None)
    agnos = await _tool_results(arguments)
    assert _delegation_builds(fresh) == 2  # agno's: its own validator per run
    assert ours[0] == ours[1] == agnos and agnos[0]


async def test_a_team_on_stock_agno_models_keeps_agnos_wrapper(fresh):
    """Guards against the sharing reaching a team that is not on Cirkelline's models (the benchmark's
    bare agno and AgentOS): agno's own wrapper, its own validator per closure."""
    member = Agent(id="research-specialist", name="Research Specialist", telemetry=False,
                   model=ScriptedModel(id="m", label="research-specialist", script=lambda c: Turn(text="1167.")))
    team = Team(id="t", name="Leader", members=[member], mode=TeamMode.coordinate, telemetry=False,
                model=ScriptedModel(id="l", label="leader", script=lambda c: Turn(text="Done.")))
    for _ in range(2):
        wrapper = _tool(True, team).entrypoint
        assert wrapper.__code__.co_filename.endswith("agno/tools/function.py")
    assert _delegation_builds(fresh) == 2
    assert not any(k[-1] == "validator" for k in delegation_tool._derived)
