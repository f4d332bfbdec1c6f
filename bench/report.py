"""Generate the markdown tables from result files.

    python -m bench.report                       # latest date in bench/results -> <date>-table.md
    python -m bench.report --date 2026-11-27 --stdout

One row per scenario and N. Columns (definitions also in bench/README.md):

- runs/s: N ÷ wall time of the round (all N started at once);
- p50/p95/p99: completion time of a run as the client saw it (request -> terminal frame), s;
- eff.: concurrency efficiency = single-run time (the scenario's N=1 p50) ÷ this round's p50;
- TTFT+ p50/p99: client TTFT minus the ideal TTFT (leader's tool call + member's ttft), ms;
- CPU ms/run: CPU seconds of all server processes during the round ÷ N;
- ×bare: that ÷ bare agno's CPU ms/run at the same N and call profile;
- ×AgentOS: runs/s ÷ AgentOS's runs/s at the same N and call profile (SQLite AgentOS);
- lag p99: event-loop lag p99 (worst server process), ms;
- RSS KB/run: (peak RSS during the round − RSS before) ÷ N; "kept MB": RSS right after the round
  − before / the same after the server has been idle for `--settle` seconds (7);
- DB conn: peak PostgreSQL backends of the benchmark database (SQLite: –);
- SYN drops: connections the kernel dropped because the server's listen queue was full
  (TcpExt ListenOverflows during the round; those clients waited for SYN retransmits);
- client CPU: the load generator's CPU ÷ wall (share of one core; near 1 = client-bound).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import RESULTS_DIR

_KIND_ORDER = {"bare": 0, "agentos": 1, "cirkelline": 2, "sync": 3}


def load_results(results_dir: Path, date: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Result files of one date (default: the latest), without their raw per-run records."""
    files = sorted(results_dir.glob("*.json"))
    dates = sorted({f.name[:10] for f in files})
    if not dates:
        raise SystemExit(f"no result files in {results_dir}")
    date = date or dates[-1]
    results = []
    for path in files:
        if not path.name.startswith(date):
            continue
        data = json.loads(path.read_text())
        for r in data.get("rounds", []):
            r.pop("records", None)
        results.append(data)
    results.sort(key=lambda d: (_KIND_ORDER.get(d["kind"], 9), d["call_profile"]["name"], d["scenario"]))
    return date, results


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _reference(results: list[dict[str, Any]], kind: str, profile: str, db: str | None = None) -> dict | None:
    for data in results:
        if data["kind"] == kind and data["call_profile"]["name"] == profile and (db is None or data["db"] == db):
            return {r["n"]: r for r in data["rounds"]}
    return None


def _saturation(data: dict[str, Any]) -> float | None:
    rates = [r["runs_per_s"] for r in data["rounds"] if r["runs_per_s"] and r["errors"] == 0]
    return max(rates) if rates else None


def main_table(results: list[dict[str, Any]]) -> str:
    head = ("| scenario | N | runs/s | p50 s | p95 s | p99 s | eff. | TTFT+ p50 / p99 ms | CPU ms/run | ×bare "
            "| ×AgentOS | lag p99 ms | RSS KB/run | kept MB (after / idle) | DB conn | errors | SYN drops "
            "| client CPU |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for data in results:
        profile = data["call_profile"]["name"]
        bare = _reference(results, "bare", profile)
        agentos = _reference(results, "agentos", profile, "sqlite")
        for r in data["rounds"]:
            n = r["n"]
            cpu = r["server_cpu_ms_per_run"]
            bare_cpu = bare.get(n, {}).get("server_cpu_ms_per_run") if bare else None
            os_rate = agentos.get(n, {}).get("runs_per_s") if agentos else None
            x_bare = cpu / bare_cpu if cpu and bare_cpu and data["kind"] != "bare" else None
            x_os = r["runs_per_s"] / os_rate if os_rate and r["runs_per_s"] and data["kind"] != "agentos" else None
            errors = str(r["errors"])
            if r.get("error_kinds"):
                errors += " (" + ", ".join(f"{k}: {v}" for k, v in r["error_kinds"].items()) + ")"
            lines.append(
                f"| {data['scenario']} | {n} | {_fmt(r['runs_per_s'])} | {_fmt(r['completion_p50_s'])} "
                f"| {_fmt(r['completion_p95_s'])} | {_fmt(r['completion_p99_s'])} | {_fmt(r.get('efficiency'))} "
                f"| {_fmt(r['ttft_overhead_p50_ms'], 0)} / {_fmt(r['ttft_overhead_p99_ms'], 0)} "
                f"| {_fmt(cpu, 1)} | {_fmt(x_bare)} | {_fmt(x_os)} | {_fmt(r['loop_lag_p99_ms'], 1)} "
                f"| {_fmt(r['rss_per_run_kb'], 0)} | {_fmt(r['rss_retained_mb'], 1)} / "
                f"{_fmt(r.get('rss_retained_settled_mb'), 1)} "
                f"| {_fmt(r.get('db_connections_peak'))} | {errors} | {_fmt(r.get('listen_overflows'))} "
                f"| {_fmt(r.get('client_cpu_share'))} |"
            )
    return "\n".join(lines) + "\n"


def saturation_table(results: list[dict[str, Any]]) -> str:
    """Saturation throughput (best error-free runs/s of a scenario) and its ratio to AgentOS."""
    lines = ["| scenario | saturation runs/s | × AgentOS (same call profile) | CPU ms/run at N=200 | × bare at N=200 |",
             "|---|---|---|---|---|"]
    for data in results:
        if data["kind"] == "sync":
            continue
        profile = data["call_profile"]["name"]
        os_data = next((d for d in results if d["kind"] == "agentos" and d["db"] == "sqlite"
                        and d["call_profile"]["name"] == profile), None)
        bare = _reference(results, "bare", profile)
        sat = _saturation(data)
        os_sat = _saturation(os_data) if os_data else None
        r200 = next((r for r in data["rounds"] if r["n"] == 200), None)
        cpu200 = r200["server_cpu_ms_per_run"] if r200 else None
        bare200 = bare.get(200, {}).get("server_cpu_ms_per_run") if bare else None
        lines.append(
            f"| {data['scenario']} | {_fmt(sat)} | {_fmt(sat / os_sat if sat and os_sat else None)} "
            f"| {_fmt(cpu200, 1)} | {_fmt(cpu200 / bare200 if cpu200 and bare200 else None)} |"
        )
    return "\n".join(lines) + "\n"


def render(date: str, results: list[dict[str, Any]]) -> str:
    machine = results[0]["machine"] if results else {}
    versions = results[0].get("versions", {}) if results else {}
    profiles = {d["call_profile"]["name"]: d["call_profile"] for d in results}
    out = [f"# Load benchmark results, {date}", ""]
    out.append(f"Machine: {machine.get('cpus')} CPUs ({machine.get('cpu_model')}), {machine.get('memory_gb')} GiB, "
               f"Python {machine.get('python')}; " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".")
    for name, p in sorted(profiles.items()):
        out.append(f"Call profile {name}: fake provider ttft {p['ttft']} s, {p['tokens_per_second']} deltas/s, "
                   f"answer {p['answer_words']} words in {p['chunk_words']}-word deltas; ideal run "
                   f"{p['ideal_run_s']} s, ideal TTFT {p['ideal_ttft_s']} s.")
    out += ["", main_table(results), "", "Saturation:", "", saturation_table(results)]
    return "\n".join(out)


def write_report(results_dir: Path = RESULTS_DIR, date: str | None = None, out: Path | None = None) -> Path:
    date, results = load_results(results_dir, date)
    path = out or results_dir / f"{date}-table.md"
    path.write_text(render(date, results))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--date", help="date prefix of the result files (default: the latest)")
    parser.add_argument("--out", type=Path, help="markdown file to write (default: <results>/<date>-table.md)")
    parser.add_argument("--stdout", action="store_true", help="print the tables instead of writing a file")
    args = parser.parse_args(argv)
    if args.stdout:
        date, results = load_results(args.results_dir, args.date)
        print(render(date, results))
        return
    print(write_report(args.results_dir, args.date, args.out))


if __name__ == "__main__":
    main()
