"""Per-run state that code deep inside agno (model wrappers, the storage adapter) reports to.

The run service (chat.runs) sets `current_run` in the task that drives a run; asyncio copies the
context into every task agno spawns for that run (member runs, tool calls), so a model wrapper in
a member's task reports to the same `RunContext` as the leader. It sits on the ground floor,
below the run service, the agno seam (chat.agents) and storage (chat.storage), because all three
read or write it and none of them may import the others' packages upwards.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import weakref
from collections.abc import Callable
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

    # The member's agno RunOutput (typed Any: nothing below chat.agents imports agno). By the
    # time the leader gets the tool result its content is the member's final answer (agno's
    # accumulated content is reset at each retry).
    output: Any
    # Characters of text the member had streamed before its retries (discarded by clients).
    discarded: int = 0


@dataclass
class Discard:
    """Text a run streamed from a provider call that is being retried: clients must drop it."""

    run_id: str | None  # None: the team run itself
    agent_id: str | None  # set for a member run
    characters: int


@dataclass
class CutCall:
    """A provider call (one attempt) that agno will never report: cut off by a cancel or a deadline,
    or failed after it had begun answering. The retry layer (chat.agents.retry) bills it from what
    it saw: the usage the provider sent, if any, else a local estimate (chat.agents.token_estimate)."""

    agent: str  # agent or team id, model id, provider: the key of the run's ledger (chat.runs.accounting)
    model: str
    provider: str
    tokens: dict[str, int]
    # 1; 0 for a completed call that reported no usage, which agno's own event counts.
    calls: int = 1
    estimated: bool = True


@dataclass(frozen=True)
class UserProfile:
    """What a run knows about its user from their profile (chat.personal), read with the run's
    session claim (chat.storage.buffer); the defaults for a user who never changed theirs."""

    display_name: str = ""
    timezone: str = "UTC"
    custom_instructions: str = ""
    memories_enabled: bool = False


class WriteBuffer:
    """agno's storage writes during one run, kept in memory until the run's final write.

    Filled by the storage adapter (chat.storage.agno_db), emptied by the run service's final
    write (chat.storage.buffer.take_writes); `closed` once taken, so a write that arrives later
    (agno persisting a cancelled run from a background task) goes straight to the database.
    """

    def __init__(self) -> None:
        self.session: dict | None = None
        self.runs: dict[str, dict] = {}
        self.closed = False

    def add_session(self, session_dict: dict) -> None:
        self.session = session_dict

    def add_run(self, row: dict) -> None:
        existing = self.runs.get(row["run_id"])
        if existing is not None and existing.get("run_index") is not None:
            row["run_index"] = existing["run_index"]
        self.runs[row["run_id"]] = row


@dataclass
class RunContext:
    run_id: str
    user_id: int
    # time.monotonic() by which the run must end; retries never sleep past it.
    deadline: float = float("inf")
    retries: int = 0
    backoff_seconds: float = 0.0
    last_provider_failure: ProviderFailure | None = None
    # Storage writes agno made during the run that could not be saved (chat.storage).
    storage_errors: list[str] = field(default_factory=list)
    # Buffered storage writes, written with the usage row in one transaction; None once the
    # database refused them (then the usage row is written alone).
    write_buffer: WriteBuffer | None = None
    # The run's session as its claim loaded it, for agno's first get_session: (session id, the
    # agno session record, or None for a session this run created).
    prefetched_session: tuple[str, dict | None] | None = None
    # The run's own row as its claim stored it (status RUNNING): kept with the run's final status
    # if agno stores nothing of the run (chat.storage.buffer.take_writes).
    running_row: dict | None = None
    # The user's profile, and whether their previous run in this session was cancelled, as the
    # claim read them; the team is built for the run from these (chat.runs.teams).
    profile: UserProfile = field(default_factory=UserProfile)
    previous_run_cancelled: bool = False
    # Every task spawned inside the run (filled by chat.runs.tracking's task factory).
    tasks: weakref.WeakSet[asyncio.Task] = field(default_factory=weakref.WeakSet)
    # Stops the run (RunHandle.abort), for code deep inside agno (the first-token deadline).
    abort: Callable[[str], bool] | None = None
    # Set once the run is being stopped; nothing should start new provider calls after that.
    stopping: bool = False
    # Why a timed-out run timed out: "deadline" (the whole run) or "first_token".
    timeout_cause: str = "deadline"
    # Partial output streamed by a provider call that was then retried: the client must drop it.
    discards: list[Discard] = field(default_factory=list)
    # Member runs retried after partial output, by run id: agno's delegation tool result holds
    # everything such a member streamed, and chat.agents hands the leader its answer instead.
    restarted_runs: dict[str, RestartedRun] = field(default_factory=dict)
    # Costs providers reported for their calls (USD, Decimal), by (agent or team id, model id,
    # provider): the ledger's key (chat.runs.accounting), stored beside our own price.
    provider_costs: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    # Provider calls agno reports no usage for (cut off, or failed mid-answer), billed by the run
    # service with the ones agno reports.
    cut_calls: list[CutCall] = field(default_factory=list)
    # The status the run's own stored row must carry when it differs from agno's (a timed-out
    # run, which agno stopped as cancelled, is stored as ERROR); set by the run service.
    final_status: str | None = None
    # A streamed run's terminal event index (chat.runs.eventlog), stored with its run so a stream
    # resumed after the log expired is replayed from the database under the same index.
    final_event_index: int | None = None
    # Set by the run's final write when the reaper had closed the run already (its worker's lease
    # ran out while the run went on): nothing of the run is stored after that (chat.runs.finalize).
    closed_by_reaper: bool = False

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("cirkelline_run", default=None)
