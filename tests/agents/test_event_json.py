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
