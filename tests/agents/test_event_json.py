"""A run event's JSON: the fast path (chat.agents.event_json.event_json) is byte-identical to
agno's own serializer, and every SSE frame is an id line, one event line and one data line whose
JSON is agno's with the event's `event_index` added (as AgentOS's resumable streams carry it)."""

from __future__ import annotations

import json

import pytest

from chat.agents.event_json import event_json
from chat.api.sse import frames
from chat.runs import RunRequest, start_run
from chat.runs.logentries import encode

pytestmark = pytest.mark.django_db(transaction=True)


async def _events(user, message="Please research the history of Copenhagen"):
    handle = await start_run(RunRequest(user_id=user.pk, message=message))
    return [event async for event in handle.events()]


async def test_event_json_matches_agnos_serializer_for_every_event_of_a_run(alice):
    events = await _events(alice)
    names = {e.event for e in events}
    assert {"TeamRunStarted", "TeamToolCallStarted", "TeamToolCallCompleted", "RunContent", "RunCompleted",
            "TeamRunContent", "TeamModelRequestCompleted", "TeamRunCompleted"} <= names
    for event in events:
        assert event_json(event) == event.to_json(separators=(",", ":"), indent=None), event.event
        frame = frames([encode(7, event)]).decode()
        assert frame.count("\n") == 4 and frame.startswith(f"id: 7\nevent: {event.event}\ndata: ")
        data = json.loads(frame.split("data: ", 1)[1])
        assert data == {**json.loads(event.to_json(separators=(",", ":"), indent=None)), "event_index": 7}


def _metrics():
    from agno.metrics import RunMetrics

    metrics = RunMetrics(input_tokens=120, output_tokens=30, total_tokens=150, cost=0.0012, duration=1.25,
                         time_to_first_token=0.4)
    metrics.additional_metrics = {"note": "ü"}
    return metrics


def _events_by_hand() -> list:
    """Events carrying the fields agno serialises by hand, alone and together (and some it must keep)."""
    from agno.models.response import ToolExecution
    from agno.run.agent import RunCompletedEvent, RunOutput, ToolCallCompletedEvent
    from agno.run.team import RunCompletedEvent as TeamRunCompletedEvent
    from agno.run.team import RunContentEvent as TeamRunContentEvent

    tool = ToolExecution(tool_call_id="call_1", tool_name="delegate_task_to_member",
                         tool_args={"member_id": "research-specialist", "task": "history"}, result="done ✓")
    common = {"run_id": "r1", "session_id": "s1"}
    return [
        RunCompletedEvent(agent_id="research-specialist", content="Answer", metrics=_metrics(), **common),
        RunCompletedEvent(content="Answer", metrics=_metrics(), metadata={"k": [1, 2]}, session_state={"a": 1},
                          **common),
        TeamRunCompletedEvent(team_id="cirkelline", content="Final", metrics=_metrics(), member_responses=[],
                              metadata={"m": "ü"}, **common),
        ToolCallCompletedEvent(tool=tool, content="done ✓", **common),
        TeamRunContentEvent(team_id="cirkelline", content="x", citations=None, **common),
        TeamRunCompletedEvent(team_id="cirkelline", content="Final", metrics=_metrics(), **common,
                              member_responses=[RunOutput(run_id="m1", agent_id="research-specialist",
                                                          content="Member answer", metrics=_metrics())]),
        RunCompletedEvent(content="Answer", metadata={"when": object()}, **common),  # not plain: agno's
    ]


@pytest.mark.parametrize("index", range(7))
def test_events_agno_serialises_by_hand_give_agnos_bytes(index):
    event = _events_by_hand()[index]
    event.event_index = 3 if index % 2 else None
    assert event_json(event) == event.to_json(separators=(",", ":"), indent=None)


def test_completed_and_tool_events_do_not_go_through_agnos_serializer(monkeypatch):
    """Guards against the fast path falling back for the events that cost most (a run's completed
    events with their metrics, the tool call events): agno's copy and asdict walk, ~0.5 ms each."""
    from agno.run.base import BaseRunOutputEvent

    fast = _events_by_hand()[:-1]  # the last one's metadata is not plain: agno's serializer does it
    expected = [event.to_json(separators=(",", ":"), indent=None) for event in fast]

    def refused(self, *args, **kwargs):
        raise AssertionError("agno's serializer was used")

    monkeypatch.setattr(BaseRunOutputEvent, "to_json", refused)
    assert [event_json(event) for event in fast] == expected
