"""Memories for a run whose user switched them on: agno's memory manager (agentic memory: the
leader's `update_user_memory` tool) and Cirkelline's `search_memories` tool, both over the run's
storage adapter, always for the run's own user.

Memories are never pasted into the prompt (agno's `add_memories_to_context` stays off): the
leader looks them up with a tool call when they help, which costs nothing on the messages where
they do not, and shows the user each time it happens. The memory manager's model is one of the
run's models, billed to the agent `memory` of the run's ledger by the retry layer
(`ResilientModel.ledger_agent`: agno reports those calls through no event).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agno.memory import MemoryManager
from agno.models.base import Model

from chat.context import current_run

MEMORY_AGENT = "memory"
SEARCH_TOOL = "search_memories"
UPDATE_TOOL = "update_user_memory"  # agno's agentic memory tool (agno.team._default_tools)
MEMORY_TOOLS = frozenset({SEARCH_TOOL, UPDATE_TOOL})
SEARCH_LIMIT = 20

LEADER_MEMORY_INSTRUCTIONS = (
    f"Memory is on for this user. When they tell you something about themselves worth keeping (their name, "
    f"work, family, preferences, plans), or ask you to remember, change or forget something, call "
    f"`{UPDATE_TOOL}` with a precise task, and say in your answer what you saved or forgot.",
    f"What you remember is not in this prompt: when an earlier fact or preference of the user's would help, or "
    f"they ask what you remember, call `{SEARCH_TOOL}` (by topics, or by words the memory contains) instead of "
    f"guessing; an empty search means you have no such memory.",
)

MANAGER_INSTRUCTIONS = (
    "Give every memory one to three short lower-case topics such as name, work, family, preferences, food, "
    "health, location, plans or hobbies."
)


def memory_manager(model: Model, db: Any) -> MemoryManager:
    """agno's memory manager for one run: `model` (built for the run, billed as `memory`) over `db`."""
    model.ledger_agent = MEMORY_AGENT  # type: ignore[attr-defined]
    return MemoryManager(model=model, db=db, add_memories=True, update_memories=True, delete_memories=True,
                         clear_memories=True, additional_instructions=MANAGER_INSTRUCTIONS)


def _day(epoch: Any) -> str | None:
    return datetime.fromtimestamp(epoch, tz=UTC).date().isoformat() if isinstance(epoch, int) else None


# One tool per storage/search object, not per run: the tool reads the run (its user) from
# chat.context.current_run, so it holds no run state, and agno derives a callable's schema and
# argument validator once per callable object (a new closure per run cost ~0.5 ms of CPU per run:
# docs/PERFORMANCE.md). agno still gives each run a Function copy of its own.
@functools.lru_cache(maxsize=16)
def search_tool(db: Any) -> Callable:
    """The leader's `search_memories` tool over `db` (the storage adapter). The user is the run's
    (chat.context.current_run), never anything in the model's arguments."""

    async def search_memories(topics: list[str] | None = None, query: str | None = None) -> str:
        """Look up what you remember about the user from earlier conversations.

        Args:
            topics: Topics to look for, such as ["food", "work"]; a memory with any of them matches.
            query: Words the memory contains, such as "sister".

        Returns:
            The matching memories as JSON, newest first, or a sentence saying there are none.
        """
        ctx = current_run.get()
        if ctx is None:
            return "Memories can only be searched during a conversation."
        found = await db.search_memories(str(ctx.user_id), topics=topics, text=query, limit=SEARCH_LIMIT)
        if not found:
            return "No memories matched."
        return json.dumps([{"memory": m["memory"], "topics": m["topics"], "updated": _day(m["updated_at"])}
                           for m in found], ensure_ascii=False)

    search_memories.__name__ = SEARCH_TOOL
    return search_memories
