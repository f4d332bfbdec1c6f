"""A run event's JSON: the fast path (chat.agents.agno_overrides.event_json) is byte-identical to
agno's own serializer, and every SSE frame is one event line and one data line."""

from __future__ import annotations

import pytest

from chat.agents.agno_overrides import event_json
from chat.api.sse import sse_frame
from chat.runs import RunRequest, start_run

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
        assert sse_frame(event).decode().count("\n") == 3
