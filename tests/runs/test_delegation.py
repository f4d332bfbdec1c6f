"""The delegation-failure detector on a labelled fixture set, and the live stall watcher."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from chat.runs.delegation import Finding, Member, StallWatcher, detect

FIXTURES = Path(__file__).parent / "fixtures" / "delegation"
SETUP = json.loads((FIXTURES / "_members.json").read_text())
MEMBERS = [Member(m["id"], m["name"]) for m in SETUP["members"]]
CASES = sorted(p for p in FIXTURES.glob("*.json") if not p.name.startswith("_"))


def run_detector(case: dict) -> set[tuple[str, str]]:
    found = detect(case["events"], run_id=SETUP["run_id"], members=MEMBERS, stall_seconds=SETUP["stall_seconds"])
    return {(f.kind, f.member) for f in found}


def measure() -> dict[str, dict]:
    """Precision and recall per kind over every fixture (a finding counts if kind and member match)."""
    counts = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "cases": 0})
    for path in CASES:
        case = json.loads(path.read_text())
        expected = {(e["kind"], e["member"]) for e in case["expected"]}
        found = run_detector(case)
        for kind, _ in expected:
            counts[kind]["cases"] += 1
        for kind, _ in found & expected:
            counts[kind]["tp"] += 1
        for kind, _ in found - expected:
            counts[kind]["fp"] += 1
        for kind, _ in expected - found:
            counts[kind]["fn"] += 1
    for c in counts.values():
        c["precision"] = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        c["recall"] = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    return dict(counts)


def test_the_fixture_set_is_large_labelled_and_bilingual():
    cases = [json.loads(p.read_text()) for p in CASES]
    assert len(cases) >= 40
    assert {c["language"] for c in cases} == {"en", "da"}
    assert sum(1 for c in cases if not c["expected"]) >= 15, "tricky negatives are part of the set"
    kinds = defaultdict(int)
    for case in cases:
        for e in case["expected"]:
            kinds[e["kind"]] += 1
    assert set(kinds) == {"announced_not_executed", "unknown_member", "empty_task", "member_error",
                          "member_empty_result", "member_stalled"}
    assert min(kinds.values()) >= 5


def test_precision_and_recall_are_at_least_0_9_for_every_kind_with_5_cases():
    """Guards against a detector that over-fires (a mention of 'the researcher' after a real
    delegation) or under-fires (a Danish announcement); confirmed red (precision 0.74) with the
    member-object requirement removed, i.e. any "I'll ask / send / get" counted as an announcement."""
    results = measure()
    for kind, c in results.items():
        if c["cases"] >= 5:
            assert c["precision"] >= 0.9 and c["recall"] >= 0.9, (kind, c)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_each_fixture(path):
    """Every labelled transcript on its own, so a regression names the case it breaks."""
    case = json.loads(path.read_text())
    assert run_detector(case) == {(e["kind"], e["member"]) for e in case["expected"]}, case["note"]


def test_an_announcement_counts_only_without_a_delegation_tool_call():
    """Guards against flagging 'I'll ask the research specialist' when the leader then did delegate."""
    text = [{"event": "TeamRunContent", "run_id": "T", "content": "I'll ask the Research Specialist."}]
    tool = {"tool_call_id": "c", "tool_name": "delegate_task_to_member",
            "tool_args": {"member_id": "research-specialist", "task": "History of Aarhus"}}
    assert detect(text, run_id="T", members=MEMBERS) == [
        Finding("announced_not_executed", "research-specialist", "I'll ask the Research Specialist.")]
    assert detect([*text, {"event": "TeamToolCallStarted", "run_id": "T", "tool": tool}], run_id="T",
                  members=MEMBERS) == []


def test_member_events_of_another_run_are_not_this_runs_failures():
    """Guards against attributing a nested or foreign run's error to this run."""
    foreign = {"event": "RunError", "run_id": "M", "parent_run_id": "OTHER", "agent_id": "research-specialist",
               "content": "boom"}
    assert detect([foreign], run_id="T", members=MEMBERS) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stall_watcher_reports_a_silent_member_once_and_not_an_active_one():
    """The live delegation-freeze check: guards against never reporting (or reporting every poll)."""
    clock = FakeClock()
    watcher = StallWatcher("T", 30, clock=clock)
    tool = {"tool_call_id": "c1", "tool_name": "delegate_task_to_member",
            "tool_args": {"member_id": "audio-specialist", "task": "Pick a microphone"}}
    watcher.observe({"event": "TeamToolCallStarted", "run_id": "T", "tool": tool})
    watcher.observe({"event": "RunStarted", "run_id": "M", "parent_run_id": "T", "agent_id": "audio-specialist"})
    assert watcher.next_deadline() == 1030.0
    clock.now = 1029.9
    assert watcher.poll() == []
    watcher.observe({"event": "RunContent", "run_id": "M", "parent_run_id": "T", "agent_id": "audio-specialist",
                     "content": "A USB"})
    clock.now = 1059.0
    assert watcher.poll() == [], "an event 29.1 s ago is within the limit"
    clock.now = 1060.0
    [finding] = watcher.poll()
    assert (finding.kind, finding.member) == ("member_stalled", "audio-specialist")
    assert "30 s" in finding.excerpt
    clock.now = 2000.0
    assert watcher.poll() == [], "reported once per member run"
    assert watcher.next_deadline() is None


def test_stall_watcher_forgets_members_that_finished():
    clock = FakeClock()
    watcher = StallWatcher("T", 30, clock=clock)
    watcher.observe({"event": "RunStarted", "run_id": "M", "parent_run_id": "T", "agent_id": "video-specialist"})
    watcher.observe({"event": "RunCompleted", "run_id": "M", "parent_run_id": "T", "agent_id": "video-specialist",
                     "content": "done"})
    clock.now += 500
    assert watcher.poll() == [] and watcher.next_deadline() is None
