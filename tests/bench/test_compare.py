"""bench.compare's summary: medians and spreads per system, the goal ratios, the docs table."""

from bench.compare import _summarise, table
from bench.run import Options


def _round(cpu: float, rate: float, errors: int = 0) -> dict:
    return {"server_cpu_ms_per_run": cpu, "runs_per_s": rate, "completion_p50_s": 200 / rate, "errors": errors}


def test_summary_takes_medians_and_pairs_rounds_by_repetition(tmp_path):
    results = {
        "cirkelline": {200: [_round(20, 30), _round(22, 20), _round(30, 25)]},
        "agentos": {200: [_round(40, 10), _round(50, 12), _round(44, 8)]},
        "bare": {200: [_round(18, 30), _round(20, 28), _round(19, 29)]},
    }
    summary = _summarise(results, [200], 3, "1s", Options(results_dir=tmp_path), [], None)
    block = summary["per_n"]["200"]
    assert block["systems"]["cirkelline"]["cpu_ms_per_run"] == {"median": 22, "min": 20, "max": 30}
    assert block["systems"]["agentos"]["runs_per_s"]["median"] == 10
    ratios = block["ratios"]
    assert ratios["cpu_vs_agentos"] == round(22 / 44, 3)
    assert ratios["throughput_vs_agentos"] == round(25 / 10, 3)
    assert ratios["cpu_vs_bare"] == round(22 / 19, 3)
    # per repetition: round i of each system against round i of the others
    assert ratios["per_repetition"]["cpu_vs_agentos"]["min"] == round(22 / 50, 3)
    assert ratios["per_repetition"]["throughput_vs_agentos"]["max"] == round(25 / 8, 3)

    md = table(summary)
    assert "| 200 | cirkelline | **22.0** (20.0-30.0) |" in md
    assert "| 200 | **0.50** (per repetition 0.44-0.68) | **2.50**" in md
