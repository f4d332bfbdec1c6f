"""The delegation-failure detector on a labelled fixture set, and the live stall watcher."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from chat.runs.accounting import RunAccount
from chat.runs.delegation import Finding, Member, StallWatcher, detect
from chat.runs.monitor import DelegationMonitor

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


def as_objects(event: dict) -> SimpleNamespace:
    """A fixture event as the live run sees it: an object with attributes (its tool too)."""
    fields = dict(event)
    if isinstance(fields.get("tool"), dict):
        fields["tool"] = SimpleNamespace(**fields["tool"])
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_the_live_monitor_keeps_enough_to_find_what_detect_finds_over_every_event(path):
    """Guards against the monitor dropping an event the detector needs (it keeps only the
    delegation tool calls and member start/terminal events, and takes the leader's text from the
    run's account). Stalls are the live timer's job (tests/runs/test_delegation_live.py), so they
    are compared without the replay."""
    case = json.loads(path.read_text())
    run_id = SETUP["run_id"]
    account, published = RunAccount(run_id=run_id), []
    monitor = DelegationMonitor(run_id=run_id, session_id="s", user_id=1, team_id="cirkelline", stall_seconds=None,
                                account=account, members=lambda: MEMBERS, publish=published.append)
    for event in map(as_objects, case["events"]):
        account.observe(event)
        if account.terminal is None and account.is_terminal(event):
            account.terminal = event
        monitor.observe(event)
    expected = {(f.kind, f.member) for f in detect(case["events"], run_id=run_id, members=MEMBERS)}
    found = monitor.failures()
    assert {(f["kind"], f["member"]) for f in found} == expected
    assert [(e.kind, e.member) for e in published] == [(f["kind"], f["member"]) for f in found]
    kept_names = {e.event for e in monitor._kept}
    assert kept_names <= {"TeamToolCallStarted", "TeamToolCallCompleted", "TeamToolCallError", "RunStarted",
                          "RunCompleted", "RunError", "RunCancelled", "TeamRunStarted", "TeamRunCompleted",
                          "TeamRunError", "TeamRunCancelled"}
    assert len(monitor._kept) <= sum(1 for e in case["events"] if "Content" not in e["event"])
