"""bench.rounds: the order of alternating rounds, and the figures every comparison reports alike."""

from bench.rounds import per_repetition, ratio, round_order, spread, write_summary


def test_two_systems_alternate_round_by_round():
    assert [round_order(("sse", "ws"), i) for i in range(4)] == [["sse", "ws"], ["ws", "sse"]] * 2


def test_three_systems_rotate_and_every_other_rotation_runs_reversed():
    systems = ("cirkelline", "agentos", "bare")
    assert [round_order(systems, i) for i in range(6)] == [
        ["cirkelline", "agentos", "bare"], ["agentos", "bare", "cirkelline"], ["bare", "cirkelline", "agentos"],
        ["bare", "agentos", "cirkelline"], ["cirkelline", "bare", "agentos"], ["agentos", "cirkelline", "bare"],
    ]


def test_spread_ratio_and_per_repetition():
    assert spread([3.0, 1.0, 2.5]) == {"median": 2.5, "min": 1.0, "max": 3.0}
    assert spread([]) == {"median": None, "min": None, "max": None}
    assert ratio(1.0, 3.0) == 0.333 and ratio(None, 3.0) is None and ratio(1.0, 0) is None
    mine = [{"cpu": 10}, {"cpu": 30}]
    theirs = [{"cpu": 20}, {"cpu": 40}]
    assert per_repetition(mine, theirs, "cpu") == {"median": 0.625, "min": 0.5, "max": 0.75}


def test_the_summary_file_holds_the_summary_and_its_duration(tmp_path):
    import json
    import time

    out = write_summary({"comparison": "x"}, tmp_path / "results", "2026-12-06-x", time.time() - 2)
    assert out == tmp_path / "results" / "2026-12-06-x.summary.json"
    written = json.loads(out.read_text())
    assert written["comparison"] == "x" and 1.9 <= written["duration_s"] <= 10
