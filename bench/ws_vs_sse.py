"""The chat websocket against SSE on one server: server CPU per run, in alternating rounds.

    python -m bench.ws_vs_sse --n 50 --rounds 3            # writes bench/results/<date>-ws-vs-sse-n50.summary.json

Why a paired comparison and not two scenarios: on the 2-core machine of docs/PERFORMANCE.md the
server shares the cores with the fake provider, the load generator and whatever else runs, and
its CPU per run drifts between two server starts by about as much as the difference measured
here. Alternating SSE and websocket rounds (N concurrent runs each) on one warmed-up server
compares like with like; the figure reported is the median of each transport's rounds. The
scenario is `cirkelline-daphne-1w-sqlite-<call>` (the product as `make run` serves it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from .common import RESULTS_DIR, raise_fd_limit
from .rounds import errors, provenance, ratio, round_order, write_summary
from .run import Options, _remove_tree, measure_round, parse_scenario, start_server, warm_up
from .servers import FakeProviderProcess, provider_free_env

CLIENTS = {"sse": "raw", "ws": "ws"}


def compare(n: int, rounds: int, call: str, options: Options) -> dict:
    scenario = parse_scenario(f"cirkelline-daphne-1w-sqlite-{call}")
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ws-vs-sse-"))
    results: dict[str, list[dict]] = {"sse": [], "ws": []}
    try:
        with FakeProviderProcess(scenario.profile, workdir, provider_free_env()) as provider, \
                start_server(scenario, options, workdir, provider, max_users=max(n, options.warmup)) as sut:
            for client in CLIENTS.values():  # both paths warm (imports, first-run costs)
                sut.client = client
                warm_up(sut, options.warmup, options)
            for index in range(rounds):
                for transport in round_order(("sse", "ws"), index):
                    sut.client = CLIENTS[transport]
                    result = measure_round(sut, n, scenario.profile, options)
                    result.pop("records")
                    results[transport].append(result)
                    print(f"[bench] {transport} N={n} round {index + 1}: CPU {result['server_cpu_ms_per_run']} ms/run, "
                          f"p50 {result['completion_p50_s']} s, errors {result['errors']}", flush=True)
    finally:
        _remove_tree(workdir)
    cpu = {t: statistics.median(r["server_cpu_ms_per_run"] for r in rs) for t, rs in results.items()}
    return {
        "comparison": "ws-vs-sse", "scenario": scenario.name, "n": n, "rounds": rounds,
        "call_profile": scenario.profile.describe(), **provenance(options),
        "median_server_cpu_ms_per_run": cpu, "ws_over_sse": ratio(cpu["ws"], cpu["sse"]),
        "errors": {t: errors(rs) for t, rs in results.items()},
        "results": results,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_vs_sse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="concurrent runs per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per transport")
    parser.add_argument("--call", default="1s", help="call profile (1s, 3.3s, ...)")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds after each round")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    options = Options(date=dt.date.today().isoformat(), settle=args.settle, results_dir=args.results_dir)
    started = time.time()
    summary = compare(args.n, args.rounds, args.call, options)
    out = write_summary(summary, args.results_dir, f"{options.date}-ws-vs-sse-n{args.n}", started)
    cpu = summary["median_server_cpu_ms_per_run"]
    print(f"[bench] median server CPU per run: SSE {cpu['sse']} ms, websocket {cpu['ws']} ms "
          f"(x{summary['ws_over_sse']}); wrote {out}", flush=True)


if __name__ == "__main__":
    main()
