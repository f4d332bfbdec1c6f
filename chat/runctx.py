"""Per-run state that code deep inside agno (model wrappers, the storage adapter) reports to.

The run service sets `current_run` in the task that drives a run; asyncio copies the context
into every task agno spawns for that run (member runs, tool calls), so a model wrapper in a
member's task reports to the same `RunContext` as the leader.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProviderFailure:
    status_code: int | None
    message: str
    retry_after: float | None = None
    # True when the failure came after output of that call had been streamed.
    mid_stream: bool = False


@dataclass
class RestartedRun:
    """A member run whose provider call was retried after streaming part of its answer."""

    # The member's agno RunOutput: by the time the leader gets the tool result, its content
    # is the member's final answer (agno's accumulated content is reset at each retry).
    output: Any
    # Characters of text the member had streamed before its retries (discarded by clients).
    discarded: int = 0


@dataclass
class RunContext:
    run_id: str
    user_id: int
    # time.monotonic() by which the run must end; retries never sleep past it.
    deadline: float = float("inf")
    retries: int = 0
    backoff_seconds: float = 0.0
    last_provider_failure: ProviderFailure | None = None
    # Storage writes agno made during the run that could not be saved (see chat.storage).
    storage_errors: list[str] = field(default_factory=list)
    # Buffered storage writes, flushed with the usage row in one transaction (chat.storage).
    write_buffer: Any = None
    # Prefetched session row for this run's first agno get_session (chat.storage).
    prefetched_session: Any = None
    # Every task spawned inside the run (a WeakSet filled by chat.runner's task factory).
    tasks: Any = None
    # Stops the run (RunHandle.abort), for code deep inside agno (the first-token deadline).
    abort: Any = None
    # Set once the run is being stopped; nothing should start new provider calls after that.
    stopping: bool = False
    # Why a timed-out run timed out: "deadline" (the whole run) or "first_token".
    timeout_cause: str = "deadline"
    # Partial output streamed by a provider call that was then retried: the client must drop it.
    discards: list[dict] = field(default_factory=list)
    # Member runs retried after partial output, by run id: agno's delegation tool result holds
    # everything such a member streamed, and chat.providers hands the leader its answer instead.
    restarted_runs: dict[str, RestartedRun] = field(default_factory=dict)
    # The status the run's own stored row must carry when it differs from agno's (a timed-out
    # run, which agno stopped as cancelled, is stored as ERROR); set by the run service.
    final_status: str | None = None

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("cirkelline_run", default=None)
