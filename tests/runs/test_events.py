"""Merging waiting text deltas (chat.runs.events.coalesce) loses no text and keeps everything else in order."""

from __future__ import annotations

import pytest

from chat.runs import RunRequest, start_run
from chat.runs.events import coalesce

pytestmark = pytest.mark.django_db(transaction=True)


async def _events(user, message="Please research the history of Copenhagen"):
    handle = await start_run(RunRequest(user_id=user.pk, message=message))
    return [event async for event in handle.events()]


async def test_coalescing_merges_consecutive_deltas_of_a_run_without_losing_text(alice):
    events = await _events(alice)
    merged = coalesce(events)
    assert len(merged) < len(events)
    for run_id in {e.run_id for e in events}:
        text = "".join(e.content for e in events if e.event in ("RunContent", "TeamRunContent")
                       and e.run_id == run_id and isinstance(e.content, str))
        merged_text = "".join(e.content for e in merged if e.event in ("RunContent", "TeamRunContent")
                              and e.run_id == run_id and isinstance(e.content, str))
        assert merged_text == text
    # the order of everything else is kept, and the originals are untouched
    assert [e.event for e in merged if "Content" not in e.event] == [e.event for e in events
                                                                      if "Content" not in e.event]
    first_delta = next(e for e in events if e.event == "RunContent" and e.content)
    assert len(first_delta.content) <= 16


def test_coalescing_keeps_single_events_and_other_runs_apart():
    from agno.run.agent import RunContentEvent

    a = RunContentEvent(run_id="a", content="Hel")
    b = RunContentEvent(run_id="a", content="lo")
    c = RunContentEvent(run_id="b", content="!")
    assert coalesce([a]) == [a]
    out = coalesce([a, b, c])
    assert [(e.run_id, e.content) for e in out] == [("a", "Hello"), ("b", "!")]
    assert a.content == "Hel"
