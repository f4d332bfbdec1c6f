"""What a run's event stream says about the run: tokens, timing, delegations, its ending.

Pure bookkeeping over agno events (no I/O), fed every event by the run service. Tokens come
from the per-call `*ModelRequestCompleted` events of the leader **and** every member, so a
delegated run is billed for all of its model calls (agno's team metrics count the leader
only), and a run that is cancelled or fails still accounts for the calls it completed; the
calls agno never reports (cut off mid-stream) come from the retry layer (`add_cut_calls`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from chat.agents.runtime import CONTENT_EVENTS, DELEGATION_TOOLS, MODEL_REQUEST_COMPLETED, RunEvent, TeamRunEvent
from chat.context import CutCall

TOKEN_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
                "cache_write_tokens")
TEAM_TERMINAL = frozenset({TeamRunEvent.run_completed.value, TeamRunEvent.run_error.value,
                           TeamRunEvent.run_cancelled.value, TeamRunEvent.run_paused.value})
_LEADER_CONTENT = TeamRunEvent.run_content.value
_LEADER_TOOL_CALL = TeamRunEvent.tool_call_started.value
_MEMBER_STARTED = RunEvent.run_started.value


@dataclass
class ModelCallUsage:
    """Tokens of one agent x model within a run (the ledger for pricing)."""

    agent: str
    model: str
    provider: str
    calls: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_FIELDS, 0))
    # Of those tokens, how many were counted locally (calls cut off before their provider reported usage).
    estimated_tokens: int = 0


@dataclass
class RunAccount:
    run_id: str
    started: float = field(default_factory=time.monotonic)
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_FIELDS, 0))
    model_calls: int = 0
    delegations: int = 0
    member_runs: set[str] = field(default_factory=set)
    ttft: float | None = None
    by_model: dict[tuple[str, str, str], ModelCallUsage] = field(default_factory=dict)
    estimated_tokens: int = 0
    # The leader's streamed answer so far (kept for runs that end without agno's output).
    leader_content: list[str] = field(default_factory=list)
    terminal: Any = None

    def observe(self, event: Any) -> None:
        name = getattr(event, "event", "")
        if name in MODEL_REQUEST_COMPLETED:
            self._add_call(event)
        elif name in CONTENT_EVENTS:
            content = getattr(event, "content", None)
            if content and isinstance(content, str):
                if self.ttft is None:
                    self.ttft = time.monotonic() - self.started
                if name == _LEADER_CONTENT and getattr(event, "run_id", None) == self.run_id:
                    self.leader_content.append(content)
        elif name == _LEADER_TOOL_CALL:
            tool = getattr(event, "tool", None)
            if tool is not None and getattr(tool, "tool_name", None) in DELEGATION_TOOLS:
                self.delegations += 1
        elif name == _MEMBER_STARTED:
            if getattr(event, "parent_run_id", None) == self.run_id:
                self.member_runs.add(event.run_id)

    def discard(self, run_id: str, characters: int) -> None:
        """Forget the last `characters` of the leader's streamed text (a retried provider call)."""
        if run_id != self.run_id or characters <= 0:
            return
        text = self.partial_content
        self.leader_content = [text[: max(0, len(text) - characters)]]

    def _entry(self, agent: str, model: str, provider: str) -> ModelCallUsage:
        key = (agent, model, provider)
        entry = self.by_model.get(key)
        if entry is None:
            entry = self.by_model[key] = ModelCallUsage(agent=agent, model=model, provider=provider)
        return entry

    def _add_call(self, event: Any) -> None:
        self.model_calls += 1
        agent = getattr(event, "agent_id", None) or getattr(event, "team_id", None) or ""
        model, provider = getattr(event, "model", "") or "", getattr(event, "model_provider", "") or ""
        entry = self._entry(agent, str(model), str(provider))
        entry.calls += 1
        for name in TOKEN_FIELDS:
            value = getattr(event, name, None) or 0
            self.tokens[name] += value
            entry.tokens[name] += value

    def add_cut_calls(self, cut_calls: list[CutCall]) -> None:
        """Bill the provider calls agno reports no usage for (chat.context.CutCall: cut off, or
        broken mid-answer), as the retry layer recorded them; takes them off the list."""
        while cut_calls:
            cut = cut_calls.pop(0)
            self.model_calls += cut.calls
            entry = self._entry(cut.agent, cut.model, cut.provider)
            entry.calls += cut.calls
            for name in TOKEN_FIELDS:
                value = cut.tokens.get(name, 0)
                self.tokens[name] += value
                entry.tokens[name] += value
            if cut.estimated:
                entry.estimated_tokens += cut.tokens.get("total_tokens", 0)
                self.estimated_tokens += cut.tokens.get("total_tokens", 0)

    def is_terminal(self, event: Any) -> bool:
        return getattr(event, "event", "") in TEAM_TERMINAL and getattr(event, "run_id", None) == self.run_id

    @property
    def partial_content(self) -> str:
        return "".join(self.leader_content)

    def elapsed(self) -> float:
        return time.monotonic() - self.started
