"""The delegation tool's schema is derived once per process for teams on Cirkelline's models
(chat/agents/delegation_tool.py SharedDerivations), and each run still gets a tool of its own."""

from __future__ import annotations

import pytest
from agno.tools import function as agno_function

from chat.agents import delegation_tool
from chat.agents.providers import ModelSpec
from chat.agents.team import build_cirkelline_team
from tests.doubles.fake_openai import FakeProvider

MESSAGE = "Please research the history of Copenhagen"


@pytest.fixture
def derivations(monkeypatch):
    """How often agno introspects a callable from scratch (schema; template with its validator)."""
    counts = {"schema": 0, "template": 0}
    derive, build = agno_function._derive_entrypoint_schema, agno_function.Function._build_from_callable.__func__

    def counting_derive(*args, **kwargs):
        counts["schema"] += 1
        return derive(*args, **kwargs)

    def counting_build(cls, *args, **kwargs):
        counts["template"] += 1
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(agno_function, "_derive_entrypoint_schema", counting_derive)
    monkeypatch.setattr(agno_function.Function, "_build_from_callable", classmethod(counting_build))
    monkeypatch.setattr(delegation_tool, "_derived", {})
    return counts


async def _run(team) -> list:
    return [event async for event in team.arun(MESSAGE, stream=True, stream_events=True)]


async def test_runs_after_the_first_derive_nothing_again(derivations):
    """Guards against the delegation tool being introspected afresh every run (without
    SharedDerivations, or with `_derivation_key` not recognising agno's closure): a schema and a
    template with its validator per run, ~1.7 ms of CPU (docs/PERFORMANCE.md)."""
    await _run(build_cirkelline_team(ModelSpec("scripted", "")))
    after_first = dict(derivations)
    for _ in range(3):
        events = await _run(build_cirkelline_team(ModelSpec("scripted", "")))
        assert events[-1].event == "TeamRunCompleted"
    assert derivations == after_first
    assert after_first["template"] >= 1  # the first run did derive it


async def test_each_run_delegates_with_its_own_tool(derivations):
    """The shared shape holds no closure: a later run's delegation runs in that run, not the first's."""
    runs = [await _run(build_cirkelline_team(ModelSpec("scripted", ""))) for _ in range(3)]
    for events in runs:
        team_run_id = events[0].run_id
        member_starts = [e for e in events if e.event == "RunStarted"]
        assert member_starts and all(e.parent_run_id == team_run_id for e in member_starts)
        assert any(e.event == "TeamToolCallCompleted" and e.tool.result for e in events)
    assert all(shape.entrypoint is None for key, shape in delegation_tool._derived.items() if "template" in key)


@pytest.fixture
def provider(settings):
    with FakeProvider(answer_words=6) as fake:
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        yield fake


async def test_the_provider_is_offered_the_tool_agno_derives(provider, monkeypatch, derivations):
    """The shared derivation describes the tool exactly as agno's own does: the requests' tools
    are identical with and without it."""
    spec = ModelSpec("openai-like", "fake")
    await _run(build_cirkelline_team(spec))
    await _run(build_cirkelline_team(spec))  # served from the shared derivation
    monkeypatch.setattr(delegation_tool, "_derivation_key", lambda entrypoint: None)
    await _run(build_cirkelline_team(spec))  # agno's own derivation
    leader_calls = [r.body["tools"] for r in provider.requests if r.body.get("tools")]
    assert len(leader_calls) == 6
    assert leader_calls[2] == leader_calls[4] and leader_calls[0] == leader_calls[4]


async def test_a_team_on_stock_agno_models_keeps_agnos_own_cache(provider, derivations):
    from agno.models.openai import OpenAILike

    def stock(label, spec):
        return OpenAILike(id="fake", base_url=provider.base_url, api_key="x")

    for _ in range(2):
        await _run(build_cirkelline_team(ModelSpec("openai-like", "fake"), model_factory=stock))
    assert derivations["template"] == 2  # one per run: agno's behaviour, untouched


async def _no_documents(user_pk, query, limit=5, username=None):  # the run service's search, stubbed
    return []


async def test_the_leaders_own_tools_are_derived_once_too(derivations):
    """Guards against `search_my_documents` (and `search_memories`) being a new closure every run:
    agno would derive its schema, docstring and argument validator afresh each run (~0.5 ms)."""
    from chat.agents import memory
    from chat.agents.personal import ForUser

    def team():
        return build_cirkelline_team(ModelSpec("scripted", ""), user=ForUser(username="alice"),
                                     documents=_no_documents)

    tools = {t.__name__ for t in team().tools if callable(t) and hasattr(t, "__name__")}
    assert "search_my_documents" in tools
    await _run(team())
    after_first = dict(derivations)
    for _ in range(3):
        events = await _run(team())
        assert events[-1].event == "TeamRunCompleted"
    assert derivations == after_first
    db = object()
    assert memory.search_tool(db) is memory.search_tool(db)
