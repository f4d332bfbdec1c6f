"""The agno internals Cirkelline's overrides copy or rely on are the ones they were written against.

chat/agents/agno_overrides.py overrides two agno methods (a copy of `Model.aprocess_response_stream`
and `create_function_call_result`), reproduces agno's event JSON (`event_json`), shares the
delegation tool's introspection between runs (`SharedDerivations`, over agno's tool cache);
and overrides how agno's models get their SDK clients (shared clients).
Each upstream function is pinned here by a hash of its source: when agno changes one, the test
names the override to re-read against the new code, then the hash (and the pinned version) is
updated.
"""

from __future__ import annotations

import pytest

from chat.models import CANCELLED_STATUS, HISTORY_SKIP_STATUSES
from tests.drift import check_source, check_version

PINNED_AGNO = "3.1.10"

# upstream function -> (sha256 of its source, first 16 hex digits; what depends on it)
UPSTREAM = {
    "agno.models.base:Model.create_function_call_result": (
        "a4f5c5738c3177b6", "AgnoModelOverrides.create_function_call_result (overrides it, same signature)"),
    "agno.models.base:Model.arun_function_calls": (
        "29cc777b7b330c01", "AgnoModelOverrides.create_function_call_result (the delegation result is the "
                            "member's streamed deltas concatenated, then passed to create_function_call_result)"),
    "agno.team._default_tools:_get_delegate_task_function": (
        "407f43b2333b4f29", "AgnoModelOverrides.create_function_call_result (a streamed member's content events "
                            "are the tool's output) and agno_overrides._derivation_key (the closure's names, its "
                            "`team` cell)"),
    "agno.tools.function:_get_lifetime_cache": (
        "42118490d712e332", "agno_overrides.share_delegation_derivations (wraps it)"),
    "agno.tools.function:_CallableLifetimeCache.__init__": (
        "1950c2417d7ae69f", "agno_overrides.SharedDerivations (stands in for it: same methods)"),
    "agno.tools.function:_EntrypointSchema": (
        "e29a92cccd1b58da", "agno_overrides.SharedDerivations (shared because it holds no callable)"),
    "agno.tools.function:_derive_entrypoint_schema": (
        "3aae3ec545f60df7", "agno_overrides.SharedDerivations (a pure result of the code)"),
    "agno.tools.function:_compute_framework_params": (
        "6f7db676196dd1a5", "agno_overrides.SharedDerivations.framework_params"),
    "agno.tools.function:entrypoint_accepts_media": (
        "c069f31172e2fd95", "agno_overrides.SharedDerivations.entrypoint_accepts_media"),
    "agno.tools.function:Function.from_callable": (
        "4d6565edd189483a", "agno_overrides.SharedDerivations.from_callable_template"),
    "agno.tools.function:Function._build_from_callable": (
        "6768fdf5f44a26d8", "agno_overrides.SharedDerivations.from_callable_template (the fields it fills)"),
    "agno.tools.function:Function.process_entrypoint": (
        "2d9ee1ac177d5ef7", "agno_overrides.SharedDerivations.entrypoint_schema"),
    "agno.tools.function:Function._resolve_framework_params": (
        "ab4c91433247e874", "agno_overrides.SharedDerivations.framework_params"),
    "agno.tools.function:Function._wrap_callable": (
        "ea982119b58c280e", "agno_overrides.SharedDerivations (the wrapper stays per closure)"),
    "agno.tools.function:Function._validate_callable": (
        "89e167f68f0b2220", "agno_overrides._derivation_key (the async_gen_wrapper it recognises)"),
    "agno.tools.function:Function._per_run_copy": (
        "f1c3136981971f5c", "agno_overrides.SharedDerivations.from_callable_template (copies the shape)"),
    "agno.team._tools:_determine_tools_for_model": (
        "19147758a0968009", "agno_overrides._derivation_key (the delegation closure is built here every run)"),
    "agno.models.base:Model.aprocess_response_stream": (
        "9eeb0d5541a2ca75", "AgnoModelOverrides.aprocess_response_stream (a copy of it, plus StreamRestart)"),
    "agno.models.base:Model._ainvoke_stream_with_retry": (
        "57f936ec5afcf906", "AgnoModelOverrides.aprocess_response_stream (the copy calls it)"),
    "agno.models.base:Model._populate_stream_data": (
        "f0dd77ed59a9751f", "AgnoModelOverrides.aprocess_response_stream (the copy calls it; StreamRestart "
                            "resets the stream data fields it fills)"),
    "agno.models.base:Model._populate_assistant_message_from_stream_data": (
        "19246a1f0e8878f0", "AgnoModelOverrides.aprocess_response_stream (the copy calls it)"),
    "agno.agent._response:handle_model_response_chunk": (
        "f54d74c87ac23392", "AgnoModelOverrides._restart_run_content (the fallback event resets a member run's "
                            "content; content is the sum of its deltas)"),
    "agno.team._response:_handle_model_response_chunk": (
        "e3bc761d17feeaf7", "AgnoModelOverrides._restart_run_content (the fallback event resets the team run's "
                            "content)"),
    "agno.run.base:BaseRunOutputEvent.to_dict": (
        "18008b72448ea318", "agno_overrides.event_json (gives the same JSON as to_dict for events with plain "
                            "fields, event_index included)"),
    "agno.run.base:BaseRunOutputEvent.to_json": (
        "2744fea00b972eae", "agno_overrides.event_json (byte-identical to to_json with compact separators)"),
    "agno.models.openai.chat:OpenAIChat.get_async_client": (
        "8b08a8c201cec7f4", "agno_overrides.shared_openai_client (its get_async_client replaces this: one "
                            "shared client per configuration and shard)"),
    "agno.models.openai.chat:OpenAIChat._get_client_params": (
        "da7d806221a029c3", "agno_overrides.shared_openai_client (the shared client's key and arguments)"),
    "agno.models.openai.responses:OpenAIResponses.get_async_client": (
        "406f152902a0961f", "agno_overrides.shared_openai_client (replaces it for OpenAIResponses)"),
    "agno.models.openai.responses:OpenAIResponses._get_client_params": (
        "2c94848c59b45e60", "agno_overrides.shared_openai_client (OpenAIResponses' client arguments)"),
    "agno.models.google.gemini:Gemini.get_client": (
        "0a1c13e531800a2b", "agno_overrides.SharedGeminiClient.get_client (shares what it builds; its cache "
                            "key names what the client is built from)"),
}


def test_agno_is_the_pinned_version():
    """Guards against an agno upgrade going in without the overrides below being re-checked."""
    check_version("agno", PINNED_AGNO, "the overrides in chat/agents/agno_overrides.py")


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_upstream_code_an_override_relies_on_is_unchanged(name):
    """Guards against an agno change silently breaking an override of its internals."""
    expected, override = UPSTREAM[name]
    check_source(name, expected, f"chat.agents.{override}", "agno")


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
