"""agno's storage over the Django ORM: `DjangoAgnoDb`, the `AsyncBaseDb` the Cirkelline team uses.

agno calls it on the event loop, so every ORM call goes through the executor (chat.storage.
executor.run_db). Inside a run it answers agno's first `get_session` from the run's claim and
buffers agno's writes on the run's `RunContext` (chat.storage.buffer says why); outside a run
(admin tooling, tests) every method reads and writes the database directly. Sessions are read and
listed through the `ChatSession` QuerySet (chat.models), always for their owner. Memories (agno's
memory manager: the team's `update_user_memory` tool; the search tool of chat.agents.memory) are
read and written through chat.personal's QuerySet, always for one user: every memory method needs
its `user_id`, which inside a run must be the run's own user, and `clear_memories` (which agno
calls without a user) clears only the run's user's.

The one module of chat.storage that imports agno (the adapter is agno's interface).
"""

from __future__ import annotations

import abc
import logging
from typing import Any

from agno.db.base import AsyncBaseDb, SessionType
from agno.db.schemas import UserMemory
from agno.run.agent import RunOutput
from agno.run.team import TeamRunOutput
from agno.session import TeamSession
from django.conf import settings

from chat.context import current_run
from chat.errors import SessionNotFound
from chat.models import ChatRun, ChatSession
from chat.personal.memories import MEMORY_MAX
from chat.personal.memories import UserMemory as UserMemoryRow
from chat.records import epoch, owner_pk, run_row, session_record

from .buffer import settle_status, write_direct
from .executor import run_db

logger = logging.getLogger(__name__)


class DjangoAgnoDb(AsyncBaseDb):
    """agno storage over the Django ORM: sessions, runs and memories (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(id="cirkelline-django")

    # agno asks for these when it manages its own tables; Django migrations own ours.
    async def table_exists(self, table_name: str) -> bool:
        return True

    async def get_latest_schema_version(self, table_name: str) -> str:
        return "3.0.0"

    async def upsert_schema_version(self, table_name: str, version: str) -> None:
        return None

    # -- sessions --------------------------------------------------------------------------

    async def get_session(
        self,
        session_id: str,
        session_type: SessionType | None = None,
        user_id: str | None = None,
        deserialize: bool | None = True,
        runs_limit: int | None = None,
    ) -> TeamSession | dict | None:
        ctx = current_run.get()
        if ctx is not None and ctx.prefetched_session is not None and ctx.prefetched_session[0] == session_id:
            record = ctx.prefetched_session[1]
        else:
            limit = settings.CIRKELLINE_HISTORY_RUNS if runs_limit is None else runs_limit
            try:
                record = await run_db(ChatSession.objects.for_run, session_id, owner_pk(user_id), limit)
            except SessionNotFound:
                return None
        if record is None:
            return None
        if not deserialize:
            return dict(record)
        return TeamSession.from_dict(dict(record))

    async def upsert_session(self, session: Any, deserialize: bool | None = True) -> Any | None:
        session_dict = session.to_dict(include_runs=False)
        session_dict["session_type"] = "team" if isinstance(session, TeamSession) else "agent"
        owner = owner_pk(session_dict.get("user_id"))
        if owner is None:
            raise ValueError("Cirkelline sessions always belong to a user")
        ctx = current_run.get()
        buffer = ctx.write_buffer if ctx is not None else None
        if buffer is not None and not buffer.closed:
            buffer.add_session(session_dict)
            return session if deserialize else session_dict
        saved = await self._write(session_dict, session_dict["session_id"], owner, [])
        if not saved:
            return None
        return session if deserialize else session_dict

    async def get_sessions(
        self,
        session_type: SessionType | None = None,
        user_id: str | None = None,
        component_id: str | None = None,
        session_name: str | None = None,
        start_timestamp: int | None = None,
        end_timestamp: int | None = None,
        limit: int | None = None,
        page: int | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        deserialize: bool | None = True,
        include_runs: bool = True,
    ):
        owner = owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline lists sessions per user only: pass user_id")
        rows, total = await run_db(
            ChatSession.objects.page, owner, limit=limit or 20, page=page or 1, sort_by=sort_by,
            sort_order=sort_order, session_name=session_name, component_id=component_id,
        )
        if deserialize:
            return [TeamSession.from_dict(session_record(r)) for r in rows]
        return [session_record(r) for r in rows], total

    async def rename_session(
        self,
        session_id: str,
        session_type: SessionType | None,
        session_name: str,
        user_id: str | None = None,
        deserialize: bool | None = True,
    ):
        owner = owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline renames sessions for their owner only: pass user_id")
        record = await run_db(ChatSession.objects.rename, owner, session_id, session_name)
        if record is None:
            return None
        return TeamSession.from_dict(record) if deserialize else record

    async def delete_session(self, session_id: str, user_id: str | None = None) -> bool:
        owner = owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline deletes sessions for their owner only: pass user_id")
        return await run_db(ChatSession.objects.remove, owner, session_id)

    async def delete_sessions(self, session_ids: list[str], user_id: str | None = None) -> None:
        for session_id in session_ids:
            await self.delete_session(session_id, user_id=user_id)

    # -- runs ------------------------------------------------------------------------------

    async def upsert_run(
        self,
        run: RunOutput | TeamRunOutput | dict,
        session_id: str,
        user_id: str | None = None,
        run_index: int | None = None,
    ) -> None:
        owner = owner_pk(user_id)
        if owner is None:
            raise ValueError("Cirkelline runs always belong to a user")
        ctx = current_run.get()
        row = settle_status(ctx, run_row(run, run_index))
        buffer = ctx.write_buffer if ctx is not None else None
        if buffer is not None and not buffer.closed:
            buffer.add_run(row)
            return
        if not await self._write(None, session_id, owner, [row]):
            logger.info("run %s not stored: user %s has no session %s (deleted)", row["run_id"], owner, session_id)

    async def get_run(self, run_id: str, deserialize: bool | None = True):
        payload = await run_db(ChatRun.objects.payload, run_id)
        if payload is None or not deserialize:
            return payload
        return TeamRunOutput.from_dict(payload) if payload.get("team_id") and not payload.get("agent_id") \
            else RunOutput.from_dict(payload)

    async def _write(self, session_dict, session_id, owner, rows) -> bool:
        ctx = current_run.get()
        if ctx is not None and ctx.closed_by_reaper:  # its stored state is the reaper's (chat.runs.finalize)
            logger.info("run %s: closed by the reaper; agno's late write of it is dropped", ctx.run_id)
            return True
        try:
            return await run_db(write_direct, session_dict, session_id, owner, rows, claim=ctx is None)
        except Exception as exc:  # agno swallows storage errors: report them to the run
            if ctx is not None:
                ctx.storage_errors.append(f"{type(exc).__name__}: {exc}")
            raise


    # -- memories (chat.personal): always one user's -------------------------------------------

    @staticmethod
    def _memory_owner(user_id: Any) -> int:
        """The user whose memories a call may touch: `user_id`, which must be the run's own user
        when called inside a run (agno passes the run's user; nothing a model says chooses it)."""
        owner = owner_pk(user_id)
        if owner is None:
            raise NotImplementedError("Cirkelline keeps memories per user only: pass user_id")
        ctx = current_run.get()
        if ctx is not None and owner != ctx.user_id:
            raise PermissionError(f"a run of user {ctx.user_id} cannot reach the memories of user {owner}")
        return owner

    async def upsert_user_memory(self, memory: UserMemory, deserialize: bool | None = True):
        owner = self._memory_owner(memory.user_id)
        text = (memory.memory if isinstance(memory.memory, str) else str(memory.memory or "")).strip()
        if not text:
            return None
        saved = await run_db(UserMemoryRow.objects.save_for, owner, memory=text[:MEMORY_MAX],
                             memory_id=memory.memory_id, topics=memory.topics, input=memory.input,
                             agent_id=memory.agent_id, team_id=memory.team_id)
        if saved is None:  # the id is another user's memory: never overwritten
            logger.warning("memory %s not stored for user %s: the id is taken", memory.memory_id, owner)
            return None
        return UserMemory.from_dict(saved) if deserialize else saved

    async def get_user_memory(self, memory_id: str, deserialize: bool | None = True, user_id: str | None = None):
        found = await run_db(UserMemoryRow.objects.one, self._memory_owner(user_id), memory_id)
        if found is None or not deserialize:
            return found
        return UserMemory.from_dict(found)

    async def get_user_memories(
        self,
        user_id: str | None = None,
        agent_id: str | None = None,
        team_id: str | None = None,
        topics: list[str] | None = None,
        search_content: str | None = None,
        limit: int | None = None,
        page: int | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        deserialize: bool | None = True,
    ):
        rows, total = await run_db(
            UserMemoryRow.objects.page, self._memory_owner(user_id), topics=topics, search=search_content,
            agent_id=agent_id, team_id=team_id, limit=limit, page=page or 1, sort_by=sort_by, sort_order=sort_order,
        )
        if deserialize:
            return [UserMemory.from_dict(row) for row in rows]
        return rows, total

    async def search_memories(self, user_id: str, *, topics: list[str] | None = None, text: str | None = None,
                              limit: int = 20) -> list[dict]:
        """The user's memories with any of `topics` or containing `text` (Cirkelline's search tool)."""
        return await run_db(UserMemoryRow.objects.search, self._memory_owner(user_id), topics=topics, text=text,
                            limit=limit)

    async def get_all_memory_topics(self, user_id: str | None = None) -> list[str]:
        return await run_db(UserMemoryRow.objects.topics_of, self._memory_owner(user_id))

    async def get_user_memory_stats(self, limit: int | None = None, page: int | None = None,
                                    user_id: str | None = None) -> tuple[list[dict], int]:
        stats = await run_db(UserMemoryRow.objects.stats, self._memory_owner(user_id))
        if stats is None or (page or 1) > 1:
            return [], int(stats is not None)
        return [{**stats, "last_memory_updated_at": epoch(stats["last_memory_updated_at"])}], 1

    async def delete_user_memory(self, memory_id: str, user_id: str | None = None) -> None:
        await run_db(UserMemoryRow.objects.remove, self._memory_owner(user_id), [memory_id])

    async def delete_user_memories(self, memory_ids: list[str], user_id: str | None = None) -> None:
        await run_db(UserMemoryRow.objects.remove, self._memory_owner(user_id), list(memory_ids))

    async def clear_memories(self) -> None:
        # agno's memory manager calls this with no user: every user's memories, in agno's own
        # adapters. Here it clears the memories of the run's user, and nothing outside a run.
        ctx = current_run.get()
        if ctx is None:
            raise NotImplementedError("DjangoAgnoDb.clear_memories: only inside a run, for its user")
        await run_db(UserMemoryRow.objects.clear, ctx.user_id)


def _unused(name: str):
    async def method(self: DjangoAgnoDb, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"DjangoAgnoDb.{name}: Cirkelline stores sessions and runs only; "
            f"{name.replace('_', ' ')} is not enabled for this team"
        )

    method.__name__ = method.__qualname__ = name
    return method


# Knowledge, evals, traces, learnings and agno-side metrics are not enabled for the Cirkelline
# team; each such method says so instead of silently doing nothing.
for _name in sorted(AsyncBaseDb.__abstractmethods__ - set(vars(DjangoAgnoDb))):
    setattr(DjangoAgnoDb, _name, _unused(_name))
abc.update_abstractmethods(DjangoAgnoDb)
