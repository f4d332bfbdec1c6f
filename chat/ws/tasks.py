"""Tasks of the websocket transport that outlive the frame (or the socket) that started them.

asyncio holds only a weak reference to a task, so one that nobody keeps can be collected before it
ends: a run's pump, a `cancel`, the refusal of a socket that never authenticated and the notice of
a run that started are all started here and kept referenced until they are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_tasks: set[asyncio.Task] = set()


def spawn(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
    """A task that outlives the frame (and the socket) that started it, kept referenced."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task
