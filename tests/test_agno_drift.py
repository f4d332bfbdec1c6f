"""The agno internals Cirkelline's overrides rely on are the ones they were written against.

`chat.providers.ResilientModel` overrides two agno methods and relies on how a few agno
functions behave. Each upstream function is pinned here by a hash of its source: when agno
changes one, the test names the override to re-read against the new code, then the hash (and
the pinned version) is updated.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect

import pytest

PINNED_AGNO = "3.1.10"

# upstream function -> (sha256 of its source, first 16 hex digits; what depends on it)
UPSTREAM = {
    "agno.models.base:Model.create_function_call_result": (
        "a4f5c5738c3177b6", "ResilientModel.create_function_call_result (overrides it, same signature)"),
    "agno.models.base:Model.arun_function_calls": (
        "29cc777b7b330c01", "ResilientModel.create_function_call_result (the delegation result is the "
                            "member's streamed deltas concatenated, then passed to create_function_call_result)"),
    "agno.team._default_tools:_get_delegate_task_function": (
        "407f43b2333b4f29", "ResilientModel.create_function_call_result (a streamed member's content events "
                            "are the tool's output)"),
    "agno.models.base:Model.aprocess_response_stream": (
        "9eeb0d5541a2ca75", "ResilientModel.aprocess_response_stream (a copy of it, plus StreamRestart)"),
    "agno.agent._response:handle_model_response_chunk": (
        "f54d74c87ac23392", "ResilientModel._restart_run_content (the fallback event resets a member run's "
                            "content; content is the sum of its deltas)"),
    "agno.team._response:_handle_model_response_chunk": (
        "e3bc761d17feeaf7", "ResilientModel._restart_run_content (the fallback event resets the team run's "
                            "content)"),
}


def _source_digest(name: str) -> str:
    module, _, path = name.partition(":")
    obj = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def test_agno_is_the_pinned_version():
    """Guards against an agno upgrade going in without the overrides below being re-checked."""
    installed = importlib.metadata.version("agno")
    assert installed == PINNED_AGNO, (
        f"agno {installed} is installed; the overrides in chat/providers.py were checked against {PINNED_AGNO}. "
        "Run this file's other tests, re-read each override they name, then update PINNED_AGNO."
    )


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_upstream_code_an_override_relies_on_is_unchanged(name):
    """Guards against an agno change silently breaking an override of its internals."""
    expected, override = UPSTREAM[name]
    assert _source_digest(name) == expected, (
        f"agno's {name} changed (agno {importlib.metadata.version('agno')}): re-check chat.providers.{override} "
        "against the new source, then update its hash here."
    )
