"""The run task: one per run, apart from the request that started it.

It sets the run's `RunContext` (so everything agno spawns reports to it), iterates agno's event
stream of a team built for this run alone, accounts every event (chat.runs.accounting), watches
it for delegation failures (chat.runs.monitor), notes its completed provider calls for its live
ledger (chat.runs.liveledger: billed if its process dies), queues
what the client should see on the handle (agno's terminal event is held back until the run's rows
are written) and, whatever happened (completion, cancel, deadline, crash), finalises the run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chat.agents.hitl import continue_team_run
from chat.agents.personal import ForUser
from chat.agents.runtime import TeamRunEvent, is_run_output, stream_team_run
from chat.context import current_run
from chat.observability.request_id import bind_run

from . import liveledger
from .events import ContentDiscarded
from .finalize import finalize
from .handle import RunHandle
from .request import RunRequest
from .teams import team_for_run

logger = logging.getLogger(__name__)

_FORWARD_WITHOUT_EVENTS = frozenset({TeamRunEvent.run_content.value})


def _forward(request: RunRequest, event: Any) -> bool:
    if request.stream_events:
        return True
    name = getattr(event, "event", "")
    # Member events carry agent_id; agno streams them whatever stream_events says.
    return name in _FORWARD_WITHOUT_EVENTS or getattr(event, "agent_id", None) is not None


async def drive(handle: RunHandle) -> None:
    """The run task: agno's event stream into the handle's queue, then finalisation, whatever happens."""
    request, ctx, account, monitor = handle.request, handle.ctx, handle.account, handle.monitor
    current_run.set(ctx)
    bind_run(handle.run_id)
    output: Any = None  # agno's TeamRunOutput
    failure: BaseException | None = None
    stream = None
    try:
        team = team_for_run(request.team_id, deep_research=request.deep_research,
                            user=ForUser(ctx.profile, request.username, ctx.previous_run_cancelled))
        stream = continue_team_run(
            team, run_id=handle.run_id, session_id=handle.session_id, user_id=request.user_id,
            requirements=handle.continuation,
        ) if handle.continuation is not None else stream_team_run(
            team,
            message=request.message,
            session_id=handle.session_id,
            user_id=request.user_id,
            run_id=handle.run_id,
            session_state=request.session_state,
            dependencies=request.dependencies,
            metadata=request.metadata,
            attachments=request.attachments,
        )
        billed = 0  # calls seen completed (agno's events + the retry layer's own), for the live ledger
        async for item in stream:
            if is_run_output(item):
                output = item
                continue
            account.observe(item)
            if account.model_calls + len(ctx.cut_calls) != billed:
                billed = account.model_calls + len(ctx.cut_calls)
                liveledger.note(handle)
            monitor.observe(item)
            if account.terminal is not None:
                continue  # agno follows TeamRunCancelled with a TeamRunCompleted: one terminal only
            if account.is_terminal(item):
                account.terminal = item
                continue  # published after the run's rows are written
            if ctx.discards:
                _publish_discards(handle)
            if _forward(request, item):
                handle._publish(item)
    except asyncio.CancelledError:
        if handle.abort_reason is None:
            raise  # not ours (event loop shutdown)
        asyncio.current_task().uncancel()
    except Exception as exc:  # agno reports run failures as events; this is a bug or a crash
        failure = exc
        logger.exception("run %s crashed", handle.run_id)
    finally:
        handle._finalizing = True
        if handle._deadline_timer is not None:
            handle._deadline_timer.cancel()
        monitor.stop()
    await finalize(handle, output, failure, stream)


def _publish_discards(handle: RunHandle) -> None:
    for notice in handle.ctx.discards:
        run_id = notice.run_id or handle.run_id
        handle.account.discard(run_id, notice.characters)
        handle._publish(ContentDiscarded(
            run_id=run_id, session_id=handle.session_id, discarded_characters=notice.characters,
            agent_id=notice.agent_id, team_id=None if notice.agent_id else handle.team_id,
        ))
    handle.ctx.discards.clear()
