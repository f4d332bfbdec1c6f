"""What every part of the load harness agrees on: the workload, its ideal timings, and stats.

The workload is one message whose run is "leader delegates to one member, member answers,
leader answers": three streamed provider calls. The fake provider's knobs are chosen so
that each call takes about ``call_seconds`` and a run streams ~37 SSE frames:

- the leader's first call is the tool call ``delegate_task_to_member(member_id=..., task=MESSAGE)``:
  its JSON arguments are 121 characters, sent as 1 + 8 deltas (the provider cuts arguments into
  16-character pieces), so it ends at ``ttft + 8 / tokens_per_second``;
- the member's answer is 30 words (``answer_words``) sent 3 words per delta (``chunk_words``):
  10 deltas, ending at ``ttft + 9 / tokens_per_second``;
- the leader's final answer quotes the member (3 + 30 words): 11 deltas, ending at
  ``ttft + 10 / tokens_per_second``.

With ``tokens_per_second = 20`` and ``ttft = call_seconds - 0.45`` the three calls take
``call_seconds`` - 0.05, ``call_seconds`` and ``call_seconds`` + 0.05 s: ~3 × ``call_seconds`` per run.

The *ideal* time to first token (what a client could see if the serving stack cost nothing)
is the end of the leader's tool call plus the member call's ttft:
``ideal_ttft = (ttft + 8 / tps) + ttft``. TTFT overhead = client-side TTFT − ideal_ttft.
"""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS_DIR: Final = ROOT / "bench" / "results"
# Every process of the harness runs on the interpreter that runs the harness (the project venv).
PYTHON: Final = os.environ.get("BENCH_PYTHON") or sys.executable

# 73 characters: with agno's `{"member_id": "research-specialist", "task": ...}` that makes
# 121 characters of tool-call arguments (1 + 8 streamed deltas), see the module docstring.
MESSAGE: Final = "Please research the history of Copenhagen and summarise what matters most"

TOOL_CALL_DELTAS: Final = 9
MEMBER_DELTAS: Final = 10
LEADER_DELTAS: Final = 11
TEAM_ID: Final = "cirkelline"
RUNS_PATH: Final = f"/teams/{TEAM_ID}/runs"
TERMINAL_EVENTS: Final = frozenset({"TeamRunCompleted", "TeamRunError", "TeamRunCancelled"})
CONTENT_EVENTS: Final = frozenset({"TeamRunContent", "RunContent"})


@dataclass(frozen=True, slots=True)
class CallProfile:
    """Fake-provider timing for one provider call of about ``call_seconds``."""

    name: str
    call_seconds: float
    tokens_per_second: float = 20.0
    answer_words: int = 30
    chunk_words: int = 3

    @property
    def ttft(self) -> float:
        return round(self.call_seconds - (MEMBER_DELTAS - 1) / self.tokens_per_second, 4)

    def call_end(self, deltas: int) -> float:
        return self.ttft + (deltas - 1) / self.tokens_per_second

    @property
    def ideal_ttft(self) -> float:
        """Leader's tool call end + the member call's ttft (seconds from request to first token)."""
        return self.call_end(TOOL_CALL_DELTAS) + self.ttft

    @property
    def ideal_run(self) -> float:
        """The three calls back to back: the shortest a run can take."""
        return self.call_end(TOOL_CALL_DELTAS) + self.call_end(MEMBER_DELTAS) + self.call_end(LEADER_DELTAS)

    def provider_args(self) -> list[str]:
        """CLI flags of ``python -m tests.doubles.fake_openai`` for this profile."""
        return [
            "--ttft", str(self.ttft),
            "--tokens-per-second", str(self.tokens_per_second),
            "--answer-words", str(self.answer_words),
            "--chunk-words", str(self.chunk_words),
        ]

    def provider_kwargs(self) -> dict[str, Any]:
        """The same knobs as ``FakeProvider(...)`` keyword arguments (in-process use)."""
        return {
            "ttft": self.ttft,
            "tokens_per_second": self.tokens_per_second,
            "answer_words": self.answer_words,
            "chunk_words": self.chunk_words,
        }

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "ttft": self.ttft, "ideal_ttft_s": round(self.ideal_ttft, 4),
                "ideal_run_s": round(self.ideal_run, 4)}


PROFILES: Final = {
    "1s": CallProfile("1s", 1.0),
    "3.3s": CallProfile("3.3s", 3.3),
}


def profile_named(name: str) -> CallProfile:
    """``"1s"``, ``"3.3s"``, or any ``"<seconds>s"`` (e.g. ``"0.1s"`` for smoke tests)."""
    if name in PROFILES:
        return PROFILES[name]
    seconds = float(name.removesuffix("s"))
    if seconds < 0.46:
        # Below 0.45 s the pacing alone is longer than the call: pace faster instead.
        return CallProfile(name, seconds, tokens_per_second=max(20.0, 9 / (seconds * 0.5)))
    return CallProfile(name, seconds)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def raise_fd_limit() -> None:
    """1000 concurrent runs need ~2000+ sockets per process; lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def setup_django_bench(prefix: str, database_url: str = "") -> str:
    """Django for an in-process bench: `database_url`, or SQLite in a new temporary directory
    (which also holds the metrics files), the scripted model, no Redis, logging off, migrated.
    Returns the directory."""
    import tempfile

    workdir = tempfile.mkdtemp(prefix=prefix)
    os.environ.update(DJANGO_SETTINGS_MODULE="cirkelline_site.settings",
                      DATABASE_URL=database_url or f"sqlite:///{workdir}/db.sqlite3", CIRKELLINE_MODEL="scripted",
                      CIRKELLINE_METRICS_DIR=workdir, REDIS_URL="")
    import logging

    import django

    django.setup()
    logging.disable(logging.CRITICAL)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return workdir

