"""The agno internals Cirkelline's overrides copy or rely on are the ones they were written against.

chat/agents/stream_overrides.py overrides two agno methods (a copy of `Model.aprocess_response_stream`
and `create_function_call_result`); chat/agents/event_json.py reproduces agno's event JSON
(`event_json`); chat/agents/delegation_tool.py shares the delegation tool's introspection between
runs (`SharedDerivations`, over agno's tool cache) and its argument validator (pydantic's
`validate_call` around a stand-in: pydantic's internals pinned too); and chat/agents/shared_clients.py
overrides how agno's models get their SDK clients (shared clients).
Each upstream function is pinned here by a hash of its source: when agno changes one, the test
names the override to re-read against the new code, then the hash (and the pinned version) is
updated.
"""

from __future__ import annotations

import pytest

from chat.models import CANCELLED_STATUS, HISTORY_SKIP_STATUSES
from tests.drift import check_source, check_version

PINNED_AGNO = "3.1.10"
STREAM = "stream_overrides.AgnoModelOverrides"

# upstream function -> (sha256 of its source, first 16 hex digits; what depends on it)
UPSTREAM = {
    "agno.models.base:Model.create_function_call_result": (
        "a4f5c5738c3177b6", f"{STREAM}.create_function_call_result (overrides it, same signature)"),
    "agno.models.base:Model.arun_function_calls": (
        "29cc777b7b330c01", f"{STREAM}.create_function_call_result (the delegation result is the "
                            "member's streamed deltas concatenated, then passed to create_function_call_result)"),
    "agno.team._default_tools:_get_delegate_task_function": (
        "407f43b2333b4f29", f"{STREAM}.create_function_call_result (a streamed member's content events "
                            "are the tool's output) and delegation_tool._derivation_key (the closure's names, its "
                            "`team` cell)"),
    "agno.tools.function:_get_lifetime_cache": (
        "42118490d712e332", "delegation_tool.share_delegation_derivations (wraps it)"),
    "agno.tools.function:_CallableLifetimeCache.__init__": (
        "1950c2417d7ae69f", "delegation_tool.SharedDerivations (stands in for it: same methods) and "
                            "delegation_tool._share_validator (replaces its wrapped_entrypoint, an lru_cache "
                            "of one wrapper per closure, with one of the same kind)"),
    "agno.tools.function:_CallableLifetimeCache.clear": (
        "488df2f462c680cb", "delegation_tool._share_validator (clear() calls cache_clear on the replacement)"),
    "agno.tools.function:_release_validator_frame_namespace": (
        "e9776e3c1e730c9d", "delegation_tool._arguments_validator (drops the shared validator's caller-frame "
                            "namespace with it)"),
    "agno.tools.function:_EntrypointSchema": (
        "e29a92cccd1b58da", "delegation_tool.SharedDerivations (shared because it holds no callable)"),
    "agno.tools.function:_derive_entrypoint_schema": (
        "3aae3ec545f60df7", "delegation_tool.SharedDerivations (a pure result of the code)"),
    "agno.tools.function:_compute_framework_params": (
        "6f7db676196dd1a5", "delegation_tool.SharedDerivations.framework_params"),
    "agno.tools.function:entrypoint_accepts_media": (
        "c069f31172e2fd95", "delegation_tool.SharedDerivations.entrypoint_accepts_media"),
    "agno.tools.function:Function.from_callable": (
        "4d6565edd189483a", "delegation_tool.SharedDerivations.from_callable_template"),
    "agno.tools.function:Function._build_from_callable": (
        "6768fdf5f44a26d8", "delegation_tool.SharedDerivations.from_callable_template (the fields it fills)"),
    "agno.tools.function:Function.process_entrypoint": (
        "2d9ee1ac177d5ef7", "delegation_tool.SharedDerivations.entrypoint_schema"),
    "agno.tools.function:Function._resolve_framework_params": (
        "ab4c91433247e874", "delegation_tool.SharedDerivations.framework_params"),
    "agno.tools.function:Function._wrap_callable": (
        "ea982119b58c280e", "delegation_tool.SharedDerivations (the wrapper stays per closure)"),
    "agno.tools.function:Function._validate_callable": (
        "89e167f68f0b2220", "delegation_tool._validating_shim and _arguments_validator (reproduce the wrapper "
                            "it builds: validate_call's config, async_gen_wrapper, the sync path's conditions) "
                            "and _derivation_key (the async_gen_wrapper it recognises)"),
    "agno.tools.function:Function._per_run_copy": (
        "f1c3136981971f5c", "delegation_tool.SharedDerivations.from_callable_template (copies the shape)"),
    "agno.team._tools:_determine_tools_for_model": (
        "19147758a0968009", "delegation_tool._derivation_key (the delegation closure is built here every run)"),
    "agno.models.base:Model.aprocess_response_stream": (
        "9eeb0d5541a2ca75", f"{STREAM}.aprocess_response_stream (a copy of it, plus StreamRestart)"),
    "agno.models.base:Model._ainvoke_stream_with_retry": (
        "57f936ec5afcf906", f"{STREAM}.aprocess_response_stream (the copy calls it)"),
    "agno.models.base:Model._populate_stream_data": (
        "f0dd77ed59a9751f", f"{STREAM}.aprocess_response_stream (the copy calls it; StreamRestart "
                            "resets the stream data fields it fills)"),
    "agno.models.base:Model._populate_assistant_message_from_stream_data": (
        "19246a1f0e8878f0", f"{STREAM}.aprocess_response_stream (the copy calls it)"),
    "agno.agent._response:handle_model_response_chunk": (
        "f54d74c87ac23392", f"{STREAM}._restart_run_content (the fallback event resets a member run's "
                            "content; content is the sum of its deltas)"),
    "agno.team._response:_handle_model_response_chunk": (
        "e3bc761d17feeaf7", f"{STREAM}._restart_run_content (the fallback event resets the team run's "
                            "content)"),
    "agno.run.base:BaseRunOutputEvent.to_dict": (
        "18008b72448ea318", "event_json.event_json (gives the same JSON as to_dict for events with plain "
                            "fields, event_index included)"),
    "agno.run.base:BaseRunOutputEvent.to_json": (
        "2744fea00b972eae", "event_json.event_json (byte-identical to to_json with compact separators)"),
    "agno.models.openai.chat:OpenAIChat.get_async_client": (
        "8b08a8c201cec7f4", "shared_clients.shared_openai_client (its get_async_client replaces this: one "
                            "shared client per configuration and shard)"),
    "agno.models.openai.chat:OpenAIChat._get_client_params": (
        "da7d806221a029c3", "shared_clients.shared_openai_client (the shared client's key and arguments)"),
    "agno.models.openai.responses:OpenAIResponses.get_async_client": (
        "406f152902a0961f", "shared_clients.shared_openai_client (replaces it for OpenAIResponses)"),
    "agno.models.openai.responses:OpenAIResponses._get_client_params": (
        "2c94848c59b45e60", "shared_clients.shared_openai_client (OpenAIResponses' client arguments)"),
    "agno.models.google.gemini:Gemini.get_client": (
        "0a1c13e531800a2b", "shared_clients.SharedGeminiClient.get_client (shares what it builds; its cache "
                            "key names what the client is built from)"),
}

PINNED_PYDANTIC = "2.14.4"
VALIDATOR = "delegation_tool._arguments_validator"

# pydantic internals the shared delegation validator relies on (it is built around a stand-in,
# not the closure, and must come out as the validator agno builds around the closure).
PYDANTIC = {
    "pydantic.validate_call_decorator:validate_call": (
        "e3966a35d54ab09c", f"{VALIDATOR} (calls it as agno does; the parent frame's namespace it records)"),
    "pydantic._internal._validate_call:ValidateCallWrapper.__init__": (
        "0c0ecfa98ffbded0", f"{VALIDATOR} (the module and qualname it reads from the stand-in; ns_resolver, "
                            "which agno's _release_validator_frame_namespace drops)"),
    "pydantic._internal._validate_call:ValidateCallWrapper._create_validators": (
        "ea1741be248e7297", f"{VALIDATOR} (the ValidationError's title is the stand-in's __qualname__)"),
    "pydantic._internal._validate_call:ValidateCallWrapper.__call__": (
        "d68680f3642114ec", f"{VALIDATOR} (a call returns what the stand-in returns: the validated arguments)"),
    "pydantic._internal._validate_call:update_wrapper_attributes": (
        "161ad680a869b69d", "delegation_tool._validating_shim (the sync wrapper reproduces the one it builds)"),
    "pydantic._internal._namespace_utils:ns_for_function": (
        "f45f6117c1322250", f"{VALIDATOR} (annotations resolve in the stand-in's __module__, the closure's)"),
    "pydantic._internal._namespace_utils:get_module_ns_of": (
        "bc5145900f87714d", f"{VALIDATOR} (the globals come from __module__, not __globals__)"),
    "pydantic._internal._typing_extra:signature_no_eval": (
        "3cc11ef5246bb10f", f"{VALIDATOR} (inspect.signature: the stand-in's __signature__, the closure's)"),
    "pydantic._internal._typing_extra:get_function_type_hints": (
        "ff2d00b8c3c8aef2", f"{VALIDATOR} (reads the stand-in's __annotations__, the closure's)"),
    "pydantic._internal._generate_schema:GenerateSchema._call_schema": (
        "fee140171cbffe5b", f"{VALIDATOR} (the validator calls the stand-in with the validated arguments)"),
    "pydantic._internal._generate_schema:GenerateSchema._arguments_schema": (
        "e3fc586dae1606fa", f"{VALIDATOR} (the arguments schema: from the signature and type hints only)"),
}


def test_agno_is_the_pinned_version():
    """Guards against an agno upgrade going in without the overrides below being re-checked."""
    check_version("agno", PINNED_AGNO, "the overrides in chat/agents/ (stream_overrides, delegation_tool, "
                                       "event_json, shared_clients)")


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_upstream_code_an_override_relies_on_is_unchanged(name):
    """Guards against an agno change silently breaking an override of its internals."""
    expected, override = UPSTREAM[name]
    check_source(name, expected, f"chat.agents.{override}", "agno")


def test_pydantic_is_the_pinned_version():
    """Guards against a pydantic upgrade going in without the shared delegation validator being re-checked."""
    check_version("pydantic", PINNED_PYDANTIC, f"chat.agents.{VALIDATOR}")


@pytest.mark.parametrize("name", list(PYDANTIC))
def test_the_pydantic_code_the_shared_validator_relies_on_is_unchanged(name):
    """Guards against a pydantic change making the shared validator differ from agno's per-run one."""
    expected, override = PYDANTIC[name]
    check_source(name, expected, f"chat.agents.{override}", "pydantic")


def test_the_history_a_run_loads_skips_what_agno_skips():
    """Guards against chat.models.HISTORY_SKIP_STATUSES (a copy: chat.models imports no agno) drifting from
    agno's own list: a run's history would then hold runs agno leaves out of it (or miss some)."""
    from agno.db.utils import HISTORY_SKIP_STATUSES as agnos

    assert sorted(HISTORY_SKIP_STATUSES) == sorted(agnos), (
        "agno's HISTORY_SKIP_STATUSES changed: update chat.models.HISTORY_SKIP_STATUSES to match")


def test_a_cancelled_run_is_stored_with_agnos_cancelled_status():
    """Guards against chat.models.CANCELLED_STATUS (a copy) drifting from agno's: the run after a
    cancelled one would no longer be told (chat.agents.personal.CANCELLED_NOTE)."""
    from agno.run.base import RunStatus

    assert CANCELLED_STATUS == RunStatus.cancelled.value
