"""Which tasks belong to which run, so that cancelling a run reaches everything it started.

agno spawns tasks of its own inside a run (member runs, parallel tool calls, provider
streams). A task factory installed on the loop adds each new task to the `RunContext.tasks`
of the run whose context created it; the run service cancels those on abort.

The factory is an override of how asyncio creates tasks (a bug fix: without it, cancel and the
run deadline stopped the run task but left its member runs and provider streams going, billed and
holding connections). It relies on how `BaseEventLoop.create_task` calls a factory;
tests/runs/test_asyncio_drift.py pins Python's version and that code.
"""

from __future__ import annotations

import asyncio
import weakref

from chat.context import current_run

_tracked_loops: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()


def install_task_tracking(loop: asyncio.AbstractEventLoop) -> None:
    """Make every task created inside a run belong to that run (so cancel can reach it).

    A task factory runs in the creating task's context, where `current_run` names the run.
    """
    if loop in _tracked_loops:
        return
    previous = loop.get_task_factory()

    def factory(loop, coro, **kwargs):
        task = previous(loop, coro, **kwargs) if previous else asyncio.Task(coro, loop=loop, **kwargs)
        ctx = current_run.get()
        if ctx is not None and ctx.tasks is not None:
            ctx.tasks.add(task)
        return task

    loop.set_task_factory(factory)
    _tracked_loops.add(loop)
