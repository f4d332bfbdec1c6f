"""Benchmark: CPU the operations telemetry adds to one run, measured in-process (not a test).

    .venv/bin/python -m bench.telemetry_cost [--runs 20000]

What a typical delegated run (three provider calls, one retry-free stream) makes the telemetry
do, called exactly as the server calls it: the HTTP middleware's request counter and duration
(`prom.observe_http` + the in-progress gauge), three `hooks.provider_call_ended(ok=True)`, one
`hooks.run_finished` (its Prometheus counters and histograms and its log line through the
project's own handler, formatter and redaction, written to /dev/null), and one
`prom.delegation_failure`-free run. Prints microseconds of process CPU per run, with telemetry
on and with CIRKELLINE_TELEMETRY=false (the hooks' early return), so the difference is the
overhead per run without the noise of a whole server under load (docs/PERFORMANCE.md compares
it with the whole run's CPU from bench.run).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    os.environ.setdefault("CIRKELLINE_METRICS_DIR", tempfile.mkdtemp(prefix="cirkelline-telemetry-bench-"))
    import django

    django.setup()
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    for handler in logging.getLogger().handlers + logging.getLogger("cirkelline").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


USAGE = {
    "run_id": "3f1c2a9e-8d7b-4f61-a2c4-0b9e7d6c5a41", "request_id": "5b0e8c1d2f3a4b5c6d7e8f9012345678",
    "user_id": 42, "session_id": "a1b2c3d4-e5f6-4711-8899-aabbccddeeff", "team_id": "cirkelline",
    "model": "google:gemini-2.5-flash", "status": "completed", "error_type": "", "error_message": "",
    "input_tokens": 1810, "output_tokens": 141, "total_tokens": 1951, "reasoning_tokens": 0,
    "cache_read_tokens": 0, "cache_write_tokens": 0, "duration_ms": 3120, "ttft_ms": 1050,
    "model_calls": 3, "retries": 0, "backoff_seconds": 0.0, "delegations": 1, "member_runs": 1,
    "deep_research": False, "streamed": True,
}


def one_run() -> None:
    from decimal import Decimal

    from chat.observability import hooks, prom

    if prom_enabled():
        prom.HTTP_IN_PROGRESS.inc()
        prom.HTTP_IN_PROGRESS.dec()
        prom.observe_http("teams/<str:team_id>/runs", "POST", 200, None)
    for _ in range(3):
        hooks.provider_call_ended(ok=True)
    hooks.run_finished(USAGE, cost=Decimal("0.00367250"), message="Please research the history of Copenhagen")


def prom_enabled() -> bool:
    from django.conf import settings

    return settings.CIRKELLINE_TELEMETRY


def measure(runs: int) -> float:
    """Process CPU microseconds per run."""
    for _ in range(min(1000, runs)):
        one_run()
    start = time.process_time()
    for _ in range(runs):
        one_run()
    return (time.process_time() - start) / runs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20000)
    args = parser.parse_args()
    _setup()
    from django.conf import settings

    settings.CIRKELLINE_TELEMETRY = True
    on = measure(args.runs)
    settings.CIRKELLINE_TELEMETRY = False
    off = measure(args.runs)
    print(f"telemetry on: {on:.1f} us CPU per run; off: {off:.1f} us; overhead {on - off:.1f} us per run")


if __name__ == "__main__":
    main()
