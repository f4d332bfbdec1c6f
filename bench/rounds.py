"""Alternating rounds: the bookkeeping every paired comparison of the harness shares.

bench.compare (Cirkelline, AgentOS, bare agno), bench.scale_out (one worker, two behind nginx)
and bench.ws_vs_sse (the websocket, SSE) each measure several systems in rounds that alternate,
because on the shared 2-core machine a figure drifts between rounds by about as much as the
differences measured. What they agree on lives here, so the three report alike: the order of a
repetition's rounds, a figure's median and spread (min-max) over the rounds, ratios of medians
and per repetition, the errors, and the summary file (with the code, machine and versions).
The measuring itself (servers, the load generator) is bench.run's.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .run import Options, _machine, _versions, code_version


def round_order(systems: Sequence[str], index: int) -> list[str]:
    """The order of repetition `index`: the systems rotated by one each repetition and, with more
    than two, every other full rotation reversed, so drifting load spreads over all of them and no
    system always runs right after the same other."""
    shift = index % len(systems)
    order = [*systems[shift:], *systems[:shift]]
    if len(systems) > 2 and (index // len(systems)) % 2:
        order.reverse()
    return order


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """Median, min and max of a figure over the rounds (3 decimals); None each without rounds."""
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def figure(rounds: list[dict[str, Any]], name: str) -> list[float]:
    """A figure of every round that has it (a round may lack one, or have it None)."""
    return [r[name] for r in rounds if r.get(name) is not None]


def ratio(mine: float | None, theirs: float | None) -> float | None:
    """mine ÷ theirs (3 decimals); None when either is unknown or theirs is 0."""
    return round(mine / theirs, 3) if mine is not None and theirs else None


def per_repetition(mine: list[dict[str, Any]], theirs: list[dict[str, Any]], name: str) -> dict[str, float | None]:
    """The spread of a figure's ratio taken round by round (repetition i of each system ran within a
    minute or two of each other, so their ratio drifts less than the figures do)."""
    return spread([m[name] / t[name] for m, t in zip(mine, theirs, strict=True)])


def errors(rounds: list[dict[str, Any]]) -> int:
    return sum(r["errors"] for r in rounds)


def provenance(options: Options) -> dict[str, Any]:
    """What a summary records of where it was measured: date, commit, machine, package versions."""
    return {"date": options.date, "code": code_version(), "machine": _machine(), "versions": _versions()}


def write_summary(summary: dict[str, Any], results_dir: Path, name: str, started: float) -> Path:
    """Write `<results_dir>/<name>.summary.json` with the comparison's duration (from `started`,
    a time.time())."""
    summary["duration_s"] = round(time.time() - started, 1)
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / f"{name}.summary.json"
    out.write_text(json.dumps(summary, indent=1))
    return out
