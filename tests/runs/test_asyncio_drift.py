"""The asyncio internals chat/runs/tracking.py's task factory depends on are the ones it was written against.

The factory is installed with the public `loop.set_task_factory`, but it relies on how
`BaseEventLoop.create_task` calls a factory (`factory(loop, coro)` or with `context=`, then
names the task) and builds the default task itself (`asyncio.Task(coro, loop=loop, **kwargs)`).
Pinned by Python's version and a hash of each function's source.
"""

from __future__ import annotations

import sys

import pytest

from tests.drift import source_digest

PINNED_PYTHON = (3, 11)
FACTORY = "chat.runs.tracking.install_task_tracking"

UPSTREAM = {
    "asyncio.base_events:BaseEventLoop.create_task": ("56548d4f2564f120", "how the factory is called"),
    "asyncio.base_events:BaseEventLoop.set_task_factory": ("14bafb723aadb530", "how the factory is installed"),
}


def test_python_is_the_pinned_version():
    """Guards against a Python upgrade going in without the task factory being re-checked."""
    assert sys.version_info[:2] == PINNED_PYTHON, (
        f"Python {sys.version_info[0]}.{sys.version_info[1]} runs; {FACTORY} was checked against "
        f"{PINNED_PYTHON[0]}.{PINNED_PYTHON[1]}: re-check it, then update PINNED_PYTHON.")


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_asyncio_code_the_task_factory_relies_on_is_unchanged(name):
    """Guards against a change in how asyncio calls a task factory silently stopping cancel from reaching
    the tasks a run spawned."""
    expected, why = UPSTREAM[name]
    assert source_digest(name) == expected, (
        f"{name} changed (Python {sys.version.split()[0]}): re-check {FACTORY} ({why}), then update its hash here.")
