"""Cirkelline against agno AgentOS and bare agno, in one run, in alternating rounds.

    python -m bench.compare                              # N = 10 and 200, 3 rounds each, 1 s calls (~8 min)
    python -m bench.compare --n 10,200 --rounds 5 --profile   # + a py-spy round of Cirkelline at the largest N

What runs, all at once on this machine, against one fake provider process (loopback only):

- **Cirkelline** as ``make run`` serves it: Daphne, one process, SQLite, every feature on
  (streamed output, usage rows and cost, telemetry, the delegation monitor);
- **AgentOS** 3.1 (``bench/agentos_app.py``) on uvicorn, agno ``SqliteDb``, serving the same team
  (``bench/teams.py``: the product's own team builder on stock agno models);
- **bare agno**: the same team in-process (``bench/bare.py``), no HTTP, no database: one fresh
  process per round (warmed up first), so it alternates with the servers like they do.

Why alternating rounds: the machine has 2 cores shared with other work, and a server's CPU per
run drifts between server starts and from minute to minute by about as much as the differences
measured. Both servers stay up for the whole comparison; each repetition measures every system at
every N, in an order that rotates, so drifting load spreads over all three. The summary gives
every round's figures, the median and the spread (min-max) per system and N, and the ratios the
goals are stated in (median CPU per run ÷ AgentOS's and ÷ bare agno's, median runs/s ÷ AgentOS's),
plus the same ratios taken per repetition (each repetition's rounds ran within a minute or two).

Writes ``bench/results/<date>-compare.summary.json`` (no per-run records) and
``bench/results/<date>-compare-table.md`` (the table docs/PERFORMANCE.md shows).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import RESULTS_DIR, raise_fd_limit
from .rounds import errors, per_repetition, provenance, ratio, round_order, spread, write_summary
from .run import (
    Options,
    _bare_rounds,
    _gzip,
    _remove_tree,
    measure_round,
    parse_scenario,
    start_server,
    warm_up,
)
from .servers import FakeProviderProcess, provider_free_env

SYSTEMS = ("cirkelline", "agentos", "bare")
SCENARIOS = {
    "cirkelline": "cirkelline-daphne-1w-sqlite-{call}",
    "agentos": "agentos-uvicorn-1w-sqlite-{call}",
    "bare": "bare-agno-{call}",
}
# What each round keeps (the per-run records stay out of the summary).
KEEP = ("n", "runs_per_s", "wall_s", "completion_p50_s", "completion_p99_s", "ttft_overhead_p50_ms",
        "ttft_overhead_p99_ms", "server_cpu_ms_per_run", "errors", "error_kinds", "events_mean",
        "loop_lag_p99_ms", "machine_cpu_util", "client_cpu_share", "provider_cpu_ms_per_run")


def compare(ns: list[int], rounds: int, call: str, options: Options, profile: bool) -> dict[str, Any]:
    scenarios = {s: parse_scenario(SCENARIOS[s].format(call=call)) for s in SYSTEMS}
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    results: dict[str, dict[int, list[dict[str, Any]]]] = {s: {n: [] for n in ns} for s in SYSTEMS}
    order_log: list[list[str]] = []
    profile_file = None
    max_users = max(max(ns), options.warmup)
    try:
        with contextlib.ExitStack() as stack:
            provider = stack.enter_context(
                FakeProviderProcess(scenarios["cirkelline"].profile, workdir, provider_free_env()))
            suts = {}
            for system in ("cirkelline", "agentos"):
                sub = workdir / system
                sub.mkdir()
                suts[system] = stack.enter_context(
                    start_server(scenarios[system], options, sub, provider, max_users=max_users))
                warm_up(suts[system], options.warmup, options)
            bare_dir = workdir / "bare"
            bare_dir.mkdir()
            for index in range(rounds):
                for n in ns:
                    order = round_order(SYSTEMS, index)
                    order_log.append([f"{s}@{n}" for s in order])
                    for system in order:
                        if system == "bare":
                            result = _bare_rounds(scenarios["bare"], [n], options, bare_dir, provider)[0]
                        else:
                            result = measure_round(suts[system], n, scenarios[system].profile, options)
                        result.pop("records", None)
                        results[system][n].append({k: result.get(k) for k in KEEP})
                        print(f"[compare] round {index + 1}/{rounds} {system} N={n}: "
                              f"CPU {result['server_cpu_ms_per_run']} ms/run, {result['runs_per_s']} runs/s, "
                              f"p50 {result['completion_p50_s']} s, errors {result['errors']}, "
                              f"machine {result.get('machine_cpu_util')}", flush=True)
            if profile:
                n = max(ns)
                spy = options.results_dir / f"{options.date}-compare-cirkelline-n{n}.collapsed"
                options.results_dir.mkdir(parents=True, exist_ok=True)
                measure_round(suts["cirkelline"], n, scenarios["cirkelline"].profile, options, spy_out=spy)
                profile_file = str(_gzip(spy))
    finally:
        _remove_tree(workdir)
    return _summarise(results, ns, rounds, call, options, order_log, profile_file)


def _summarise(results: dict[str, dict[int, list[dict[str, Any]]]], ns: list[int], rounds: int, call: str,
               options: Options, order_log: list[list[str]], profile_file: str | None) -> dict[str, Any]:
    per_n: dict[str, Any] = {}
    for n in ns:
        stats = {}
        for system in SYSTEMS:
            rs = results[system][n]
            stats[system] = {
                "cpu_ms_per_run": spread([r["server_cpu_ms_per_run"] for r in rs]),
                "runs_per_s": spread([r["runs_per_s"] for r in rs]),
                "completion_p50_s": spread([r["completion_p50_s"] for r in rs if r["completion_p50_s"]]),
                "errors": errors(rs),
            }
        cirk, aos, bare = (results[s][n] for s in SYSTEMS)
        ratios = {
            "cpu_vs_agentos": _ratio(stats, "cpu_ms_per_run", "agentos"),
            "cpu_vs_bare": _ratio(stats, "cpu_ms_per_run", "bare"),
            "throughput_vs_agentos": _ratio(stats, "runs_per_s", "agentos"),
            "per_repetition": {
                "cpu_vs_agentos": per_repetition(cirk, aos, "server_cpu_ms_per_run"),
                "cpu_vs_bare": per_repetition(cirk, bare, "server_cpu_ms_per_run"),
                "throughput_vs_agentos": per_repetition(cirk, aos, "runs_per_s"),
            },
        }
        per_n[str(n)] = {"systems": stats, "ratios": ratios}
    return {
        "comparison": "cirkelline-agentos-bare", "ns": ns, "rounds": rounds, "call": call,
        "scenarios": {s: SCENARIOS[s].format(call=call) for s in SYSTEMS},
        **provenance(options), "order": order_log, "per_n": per_n, "profile_file": profile_file,
        "results": {s: {str(n): results[s][n] for n in ns} for s in SYSTEMS},
    }


def _ratio(stats: dict[str, Any], key: str, other: str) -> float | None:
    return ratio(stats["cirkelline"][key]["median"], stats[other][key]["median"])


def table(summary: dict[str, Any]) -> str:
    """The markdown table docs/PERFORMANCE.md shows."""
    lines = [
        f"Comparison of {summary['date']}, commit `{summary['code']['commit']}`"
        + (f" (uncommitted: {', '.join(summary['code']['uncommitted_server_files'])})"
           if summary['code']['uncommitted_server_files'] else "")
        + f", {summary['rounds']} alternating rounds per system and N, {summary['call']} calls; "
        "median (min-max) over the rounds.",
        "",
        "| N | system | server CPU ms/run | runs/s | p50 s | errors |",
        "|---|---|---|---|---|---|",
    ]

    def fmt(s: dict[str, Any], digits: int = 1) -> str:
        if s["median"] is None:
            return "–"
        return f"**{s['median']:.{digits}f}** ({s['min']:.{digits}f}-{s['max']:.{digits}f})"

    for n in summary["ns"]:
        block = summary["per_n"][str(n)]
        for system in SYSTEMS:
            st = block["systems"][system]
            lines.append(f"| {n} | {system} | {fmt(st['cpu_ms_per_run'])} | {fmt(st['runs_per_s'], 2)} | "
                         f"{fmt(st['completion_p50_s'], 2)} | {st['errors']} |")
    lines += ["", "| N | CPU/run ÷ AgentOS (goal ≤ 0.5) | runs/s ÷ AgentOS (goal ≥ 2 at N=200) | CPU/run ÷ bare agno |",
              "|---|---|---|---|"]
    for n in summary["ns"]:
        r = summary["per_n"][str(n)]["ratios"]
        lines.append(f"| {n} | {_cell(r, 'cpu_vs_agentos')} | {_cell(r, 'throughput_vs_agentos')} | "
                     f"{_cell(r, 'cpu_vs_bare')} |")
    return "\n".join(lines) + "\n"


def _cell(ratios: dict[str, Any], key: str) -> str:
    p = ratios["per_repetition"][key]
    if ratios[key] is None:
        return "–"
    return f"**{ratios[key]:.2f}** (per repetition {p['min']:.2f}-{p['max']:.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="10,200", help="comma-separated N values (each ≤ 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per system and N (≤ 20)")
    parser.add_argument("--call", default="1s", help="call profile (1s, 3.3s)")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds after each server round")
    parser.add_argument("--warmup", type=int, default=10, help="runs before the first measured round")
    parser.add_argument("--profile", action="store_true",
                        help="add one py-spy round of Cirkelline at the largest N (not counted)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--date", default=dt.date.today().isoformat())
    parser.add_argument("--name", default="compare", help="result file name part: <date>-<name>.summary.json")
    args = parser.parse_args(argv)
    ns = [int(x) for x in args.n.split(",") if x]
    if not ns or any(n < 1 or n > 1000 for n in ns) or not 1 <= args.rounds <= 20:
        parser.error("N must be 1..1000 and rounds 1..20")
    options = Options(date=args.date, settle=args.settle, results_dir=args.results_dir, warmup=args.warmup)
    started = time.time()
    summary = compare(ns, args.rounds, args.call, options, args.profile)
    out = write_summary(summary, args.results_dir, f"{args.date}-{args.name}", started)
    md = table(summary)
    (args.results_dir / f"{args.date}-{args.name}-table.md").write_text(md)
    print(md, flush=True)
    print(f"[compare] wrote {out} ({summary['duration_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
