"""Cirkelline's overrides of agno internals, in one place, each pinned by tests/agents/test_agno_drift.py.

Each fixes a bug or buys a saving measured in docs/PERFORMANCE.md, and each depends on agno's
private code as of the pinned version: the drift test records that version and a hash of every
upstream function's source, and names the override to re-check when one changes.

- `AgnoModelOverrides.aprocess_response_stream`, a copy of agno's `Model.aprocess_response_stream`
  that also understands `StreamRestart` (a bug fix: a provider call retried after it had streamed
  part of its answer would otherwise leave the partial text in the run's content, so the stored
  answer and the client's stream would hold it twice); with `_restart_run_content`, which resets
  agno's run content through its "fallback model activated" event.
- `AgnoModelOverrides.create_function_call_result`, agno's with one change (a bug fix: a member
  retried after partial output would reach the leader with its discarded text glued in front of
  its answer, and so would the stored tool result and the final answer's token bill).
- `SharedDerivations`: agno's per-closure introspection cache, for the delegation tool of a team
  on Cirkelline's models, made to share its results between the closures of one code (a saving:
  agno rebuilds `delegate_task_to_member` as a new closure every run and derived its JSON schema
  and signature facts from scratch twice per run; docs/PERFORMANCE.md). Its argument validator
  too: pydantic's `validate_call` validator is built once per code around a stand-in with the
  closure's signature (`_arguments_validator`), and each run's closure gets agno's wrapper shape
  validating with it (`_validating_shim`) instead of a validator compiled per run (a saving: the
  "delegation tool's per-run derivation" in docs/PERFORMANCE.md).
- `event_json`: a run event's JSON, byte-identical to agno's `to_json` by a direct attribute walk
  (a saving: agno's shallow-copies and `asdict`-walks every event; docs/PERFORMANCE.md).
- Shared SDK clients: agno's OpenAI models build an SDK client (and connection pool) in
  `get_async_client` and Gemini in `get_client`, per Model object; every run builds its own
  Models, so these overrides hand out one client per event loop, configuration and shard instead
  (a saving: "provider calls spread over 8 SDK clients" in docs/PERFORMANCE.md; without it each
  run would also leak a pool). Every OpenAI client of the process shares one TLS context
  (`tls_context`), which the SDK would otherwise build, certificates loaded, per client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import random
import ssl
import weakref
from collections.abc import AsyncIterator
from typing import Any

from agno.models.response import ModelResponse, ModelResponseEvent
from django.conf import settings

from chat.context import Discard, RestartedRun, current_run

from .runtime import DELEGATE_TOOL


class StreamRestart(ModelResponse):
    """Marker between two attempts of one streamed provider call: drop what the first streamed."""


_RESET_FIELDS = {
    "response_content": "", "response_reasoning_content": "", "response_redacted_reasoning_content": "",
    "response_citations": None, "response_audio": None, "response_image": None, "response_video": None,
    "response_file": None, "response_provider_data": None, "extra": None,
}


class AgnoModelOverrides:
    """Mixin for an agno Model, under chat.agents.retry.ResilientModel: the first two overrides above."""

    async def _restart_run_content(self, run_response: Any, discarded: int) -> AsyncIterator[Any]:
        """Undo a retried call's partial text in agno's run content and tell the client.

        agno accumulates streamed text on the run as it goes and offers one way to reset it:
        the "fallback model activated" event, which clears the run's whole content. So the
        client is told to drop all of this run's text so far, and the text earlier calls of
        the run produced is sent again as one delta before the retry's text.
        """
        content = getattr(run_response, "content", None)
        content = content if isinstance(content, str) else ""
        kept = content[: max(0, len(content) - discarded)]
        ctx = current_run.get()
        if ctx is not None:
            run_id = getattr(run_response, "run_id", None)
            ctx.discards.append(Discard(run_id=run_id, agent_id=getattr(run_response, "agent_id", None),
                                        characters=len(content)))
            if run_id and run_id != ctx.run_id:  # a member run: see create_function_call_result
                ctx.restarted_runs.setdefault(run_id, RestartedRun(run_response)).discarded += len(content)
        yield ModelResponse(event=ModelResponseEvent.fallback_model_activated.value)
        if kept:
            yield ModelResponse(role="assistant", content=kept)

    async def aprocess_response_stream(
        self,
        messages,
        assistant_message,
        stream_data,
        response_format=None,
        tools=None,
        tool_choice=None,
        run_response=None,
        compress_tool_results: bool = False,
    ) -> AsyncIterator[Any]:
        """agno's Model.aprocess_response_stream (agno 3.1.10), plus handling StreamRestart."""
        async for response_delta in self._ainvoke_stream_with_retry(  # type: ignore[attr-defined]
            messages=messages,
            assistant_message=assistant_message,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice or self._tool_choice,  # type: ignore[attr-defined]
            run_response=run_response,
            compress_tool_results=compress_tool_results,
        ):
            if isinstance(response_delta, StreamRestart):
                for name, value in _RESET_FIELDS.items():
                    setattr(stream_data, name, value)
                stream_data.response_tool_calls = []
                if response_delta.extra["discarded_characters"]:
                    discarded = response_delta.extra["discarded_characters"]
                    async for item in self._restart_run_content(run_response, discarded):
                        yield item
                continue
            if run_response and run_response.metrics:
                run_response.metrics.set_time_to_first_token()
            for model_response_delta in self._populate_stream_data(  # type: ignore[attr-defined]
                stream_data=stream_data, model_response_delta=response_delta
            ):
                yield model_response_delta
        self._populate_assistant_message_from_stream_data(  # type: ignore[attr-defined]
            assistant_message=assistant_message, stream_data=stream_data
        )

    def create_function_call_result(self, function_call, success, output=None, timer=None,
                                    function_execution_result=None):
        """agno's Model.create_function_call_result (agno 3.1.10), handing a retried member's
        answer to the leader once.

        agno's result of `delegate_task_to_member` is every content delta the member streamed,
        concatenated (Model.arun_function_calls); for a member retried after partial output that
        is the discarded text followed by the answer. Such an output is exactly the characters
        the member discarded plus its final answer, and then the answer alone is the result.
        (Broadcast mode, `delegate_task_to_members`, interleaves several members' deltas; the
        Cirkelline team runs in coordinate mode, chat.agents.team.)
        """
        if success and isinstance(output, str) and function_call.function.name == DELEGATE_TOOL:
            output = _member_answer_once(output)
        return super().create_function_call_result(  # type: ignore[misc]
            function_call, success, output=output, timer=timer, function_execution_result=function_execution_result
        )


def _member_answer_once(output: str) -> str:
    ctx = current_run.get()
    if ctx is None or not ctx.restarted_runs:
        return output
    for run_id, restarted in list(ctx.restarted_runs.items()):
        answer = getattr(restarted.output, "content", None)
        if isinstance(answer, str) and len(output) == restarted.discarded + len(answer) and output.endswith(answer):
            del ctx.restarted_runs[run_id]
            return answer
    return output


# --- shared SDK clients ------------------------------------------------------------------

# Every run builds its own Model objects; without sharing, each would build (and leak) its own
# SDK client and connection pool. Clients are shared per event loop and configuration (spread
# over CIRKELLINE_PROVIDER_CLIENTS shards); SDK clients are safe for concurrent requests.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()
_closers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]]" = weakref.WeakKeyDictionary()


def _loop_clients() -> dict:
    loop = asyncio.get_running_loop()
    bucket = _clients.get(loop)
    if bucket is None:
        bucket = _clients[loop] = {}
        # Started now, so that the loop's shutdown_asyncgens (asyncio.run, asyncio.Runner, asgiref,
        # pytest-asyncio) finalizes it: the loop's clients are closed before the loop is.
        closer = _closers[loop] = _close_when_finalized(bucket)
        asyncio.ensure_future(anext(closer))
    return bucket


async def _close_when_finalized(bucket: dict) -> AsyncIterator[None]:
    """Suspended for the life of one event loop; closing it closes that loop's provider clients.

    A client's connections belong to the loop that opened them, and an aiohttp session tells of
    itself when it is collected unclosed (and holds its sockets open until then): each loop's
    clients are closed when the loop shuts down, or when `close_loop_clients` is awaited (a server
    that stops without finalizing its loop's async generators: chat.runs.drain)."""
    try:
        yield
    finally:
        clients = list(bucket.values())
        bucket.clear()
        for client in clients:
            try:
                if inspect.iscoroutinefunction(getattr(client, "close", None)):  # the openai SDK's
                    await client.close()
                elif hasattr(getattr(client, "aio", None), "aclose"):  # google-genai: its async side
                    await client.aio.aclose()
            except Exception:  # noqa: BLE001 - closing is best effort; the loop is ending
                pass


async def close_loop_clients() -> None:
    """Close the running loop's shared provider clients (a later call on this loop builds new ones)."""
    loop = asyncio.get_running_loop()
    closer = _closers.pop(loop, None)
    _clients.pop(loop, None)
    if closer is not None:
        await closer.aclose()


def _shard() -> int:
    """Which of the loop's clients a call uses: spread by run, stable within a run.

    httpcore scans every connection of a pool each time a request starts or a response
    closes, so one pool holding a connection per concurrent stream (hundreds under load) makes
    each request cost O(streams). Several smaller pools keep that scan short, and each pool's
    own connection limit is never what a run ends up waiting for.
    """
    shards = settings.CIRKELLINE_PROVIDER_CLIENTS
    if shards <= 1:
        return 0
    ctx = current_run.get()
    return hash(ctx.run_id) % shards if ctx is not None else random.randrange(shards)


def _shared_client(key: tuple, factory: Any) -> Any:
    try:
        bucket = _loop_clients()
    except RuntimeError:  # no running loop (sync use): no sharing
        return factory()
    key = (*key, _shard())
    client = bucket.get(key)
    if client is None or (hasattr(client, "is_closed") and client.is_closed()):
        client = bucket[key] = factory()
    return client


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for provider HTTP clients, as the SDK would build it.

    The openai SDK builds an HTTP client per SDK client, and each loads the system's CA
    certificates into a context of its own (~20 ms of CPU). Clients are per event loop and
    shard, so that was paid again by every new loop (each test, each worker) even when the
    provider speaks plain http; the context is safe to share (httpcore only reads it, and
    sets the same ALPN protocols on every handshake).
    """
    import httpx2

    return httpx2.create_ssl_context()


@functools.cache
def shared_openai_client() -> type:
    """Mixin for agno's OpenAI models: `get_async_client` hands out the shared client (built on
    first use, so the openai SDK is imported only when an OpenAI model is configured)."""
    from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpxClient

    def build(params: dict) -> Any:
        # The SDK's own HTTP client and defaults (limits, redirects), with the shared TLS context
        # (unless the model brings an HTTP client of its own); its transport per
        # CIRKELLINE_PROVIDER_HTTP (aiohttp: about a quarter of httpcore's CPU per streamed call,
        # docs/PERFORMANCE.md).
        if params.get("http_client") is None:
            http = DefaultAioHttpClient if settings.CIRKELLINE_PROVIDER_HTTP == "aiohttp" else DefaultAsyncHttpxClient
            params = {**params, "http_client": http(verify=tls_context())}
        return AsyncOpenAI(**params)

    class SharedOpenAIClient:
        def get_async_client(self):  # noqa: D401 - agno API
            params = self._get_client_params()
            key = ("openai", tuple(sorted((k, repr(v)) for k, v in params.items())))
            client = _shared_client(key, lambda: build(params))
            self.async_client = client
            return client

    return SharedOpenAIClient


class SharedGeminiClient:
    """Mixin for agno's Gemini: `get_client` hands out the shared client for its configuration."""

    def get_client(self):
        if self.client:
            return self.client
        key = ("gemini", self.id, self.api_key, self.vertexai, self.project_id, self.location, self.timeout)
        build = super().get_client
        self.client = _shared_client(key, build)
        return self.client


# --- the delegation tool, derived once ---------------------------------------------------

# agno builds the delegation tool as a new closure in every run (it captures the run's state),
# and introspects a callable that carries state once per callable object: its JSON schema,
# signature facts and docstring, twice per run (the closure, then its validation wrapper), and
# pydantic's call validator for its arguments. What that derives depends only on the code
# (signature, annotations, docstring), the same every run.
_DELEGATE_FUNCTIONS = frozenset({"adelegate_task_to_member", "delegate_task_to_member",
                                 "adelegate_task_to_members", "delegate_task_to_members"})
_DEFAULT_TOOLS_FILE = "/agno/team/_default_tools.py"
_AGNO_VALIDATION_WRAPPER = ("async_gen_wrapper", "/agno/tools/function.py")
_derived: dict[tuple, Any] = {}


def _validation_wrapper(code: Any) -> bool:
    """Whether `code` is a validation wrapper around a delegation closure: agno's async-generator
    shim (`Function._validate_callable`) or one of ours (`_validating_shim`)."""
    if code is None:
        return False
    if code in _VALIDATION_WRAPPERS:
        return True
    return code.co_name == _AGNO_VALIDATION_WRAPPER[0] and code.co_filename.endswith(_AGNO_VALIDATION_WRAPPER[1])


def _derivation_key(entrypoint: Any) -> tuple | None:
    """A key naming the code of agno's delegation closure (or of a validation wrapper around one)
    in a team on Cirkelline's models; None for anything else, which agno handles as it would."""
    wrapper = None
    function = entrypoint
    inner = getattr(entrypoint, "__wrapped__", None)
    if inner is not None:
        code = getattr(entrypoint, "__code__", None)
        if not _validation_wrapper(code):
            return None
        wrapper, function = code, inner
    code = getattr(function, "__code__", None)
    if code is None or code.co_name not in _DELEGATE_FUNCTIONS or not code.co_filename.endswith(_DEFAULT_TOOLS_FILE):
        return None
    try:  # the closure's team: only teams on Cirkelline's models share (a stock team stays stock)
        team = function.__closure__[code.co_freevars.index("team")].cell_contents
    except (ValueError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(getattr(team, "model", None), AgnoModelOverrides):
        return None
    return (wrapper, code, function.__defaults__, function.__kwdefaults__)


def _arguments_validator(function: Any) -> Any:
    """pydantic's call validator for `function`'s arguments, bound to no closure of a run.

    What agno's `Function._validate_callable` builds (`validate_call` with the same config), around
    a stand-in with the closure's signature, annotations, names and module (so the same schema and
    the same namespace resolve the annotations, and a ValidationError carries the same title) that
    returns the validated arguments instead of calling the closure. The caller-frame namespace is
    dropped as agno drops it (`_release_validator_frame_namespace`): it would pin this frame.
    """
    from agno.tools.function import _release_validator_frame_namespace
    from pydantic import validate_call

    def stand_in(*args: Any, **kwargs: Any) -> tuple:
        return args, kwargs

    stand_in.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    stand_in.__annotations__ = dict(function.__annotations__)
    stand_in.__name__ = function.__name__
    stand_in.__qualname__ = function.__qualname__
    stand_in.__module__ = function.__module__
    stand_in.__doc__ = function.__doc__
    validated = validate_call(stand_in, config=dict(arbitrary_types_allowed=True))  # type: ignore[call-overload]
    _release_validator_frame_namespace(validated)
    return validated


def _validating_shim(function: Any, validate: Any) -> Any:
    """The validation wrapper agno would build around `function` (`Function._validate_callable`),
    validating with the shared `validate`: an async-generator shim for the async closures (agno's
    `async_gen_wrapper`: validation on first iteration, the inner generator closed on exit), the
    plain wrapper pydantic's `validate_call` returns for the sync ones."""
    if inspect.isasyncgenfunction(function):

        @functools.wraps(function)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            args, kwargs = validate(*args, **kwargs)
            inner = function(*args, **kwargs)
            try:
                async for item in inner:
                    yield item
            finally:
                await inner.aclose()

        async_gen_wrapper._wrapped_for_validation = True  # type: ignore[attr-defined]
        return async_gen_wrapper

    @functools.wraps(function)
    def wrapper_function(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = validate(*args, **kwargs)
        return function(*args, **kwargs)

    wrapper_function.raw_function = function  # type: ignore[attr-defined]
    wrapper_function._wrapped_for_validation = True  # type: ignore[attr-defined]
    return wrapper_function


# The code of the wrappers `_validating_shim` builds (each closure's wrapper is a function of one
# of these codes), which `_derivation_key` recognises as it recognises agno's.
_VALIDATION_WRAPPERS = frozenset(c for c in _validating_shim.__code__.co_consts if inspect.iscode(c))


def _share_validator(own: Any, function: Any, key: tuple) -> None:
    """Make the closure's own `wrapped_entrypoint` (agno's, one wrapper per closure) build the
    wrapper around the validator shared by its code. If that cannot be built, agno's own
    derivation runs (and fails or not as it would); a failure is not stored."""
    if getattr(own.wrapped_entrypoint, "shares_validator", False):
        return
    agnos = own.wrapped_entrypoint

    @functools.lru_cache(maxsize=1)
    def wrapped_entrypoint() -> Any:
        validator_key = (key, "validator")
        validate = _derived.get(validator_key)
        if validate is None:
            try:
                validate = _arguments_validator(function)
            except Exception:
                return agnos()
            _derived[validator_key] = validate
        return _validating_shim(function, validate)

    wrapped_entrypoint.shares_validator = True  # type: ignore[attr-defined]
    own.wrapped_entrypoint = wrapped_entrypoint  # agno's clear() still clears it: an lru_cache too


class SharedDerivations:
    """agno's `_CallableLifetimeCache` of one delegation closure, its introspection shared by code.

    The schema, the framework-owned parameters and whether media is wanted are pure results of
    the code (agno's `_EntrypointSchema` says so) and are derived once per process, and so is
    pydantic's call validator for the arguments (`_arguments_validator`). What is bound to this
    closure stays its own: the validation wrapper that validates with the shared validator and
    calls it (`_validating_shim`, kept on the closure's own cache, as agno keeps its wrapper), and
    so the template Function holding that wrapper (built from the shared shape, which keeps no
    closure: nothing of a run outlives it). A derivation that fails is not stored (agno replays
    failures).
    """

    __slots__ = ("_own", "_key", "wrapped_entrypoint")

    def __init__(self, own: Any, key: tuple, entrypoint: Any) -> None:
        self._own = own
        self._key = key
        if key[0] is None:  # the closure itself (a wrapper's own wrapper is itself: agno's stays)
            _share_validator(own, entrypoint, key)
        self.wrapped_entrypoint = own.wrapped_entrypoint

    def _shared(self, what: tuple, derive: Any) -> Any:
        key = (self._key, *what)
        try:
            return _derived[key]
        except KeyError:
            value = _derived[key] = derive()
            return value

    def entrypoint_schema(self, strict: bool, requires_user_input: bool, user_input_fields: Any) -> Any:
        return self._shared(("schema", strict, requires_user_input, user_input_fields),
                            lambda: self._own.entrypoint_schema(strict, requires_user_input, user_input_fields))

    def framework_params(self) -> frozenset:
        return self._shared(("framework_params",), self._own.framework_params)

    def entrypoint_accepts_media(self) -> bool:
        return self._shared(("accepts_media",), self._own.entrypoint_accepts_media)

    def from_callable_template(self, cls: type, name: str | None, strict: bool) -> Any:
        key = (self._key, "template", cls, name, strict)
        shape = _derived.get(key)
        if shape is None:
            template = self._own.from_callable_template(cls, name, strict)
            shape = template._per_run_copy()
            shape.entrypoint = None  # keeps no closure (nor, through it, any run)
            _derived[key] = shape
            return template
        template = shape._per_run_copy()
        template.entrypoint = self.wrapped_entrypoint()
        return template


@functools.cache
def share_delegation_derivations() -> None:
    """Route agno's per-callable introspection cache through `SharedDerivations` (once per process).

    Wraps `agno.tools.function._get_lifetime_cache`, which every introspection of a callable that
    carries state goes through; callables other than the delegation closures of teams on
    Cirkelline's models get agno's own cache unchanged."""
    from agno.tools import function as agno_function

    original = agno_function._get_lifetime_cache

    @functools.wraps(original)  # __wrapped__: the drift test still reads agno's source
    def get_lifetime_cache(entrypoint: Any) -> Any:
        cache = original(entrypoint)
        if cache is None:
            return None
        key = _derivation_key(entrypoint)
        return cache if key is None else SharedDerivations(cache, key, entrypoint)

    agno_function._get_lifetime_cache = get_lifetime_cache


# --- run events as JSON ------------------------------------------------------------------

_PLAIN = (str, int, float, bool)
_FIELDS: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """The dataclass field names of an event class, cached per class (event_json and
    chat.runs.events' merging of text deltas read them on every event)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()
    return names


def _is_plain(value: Any, depth: int = 0) -> bool:
    """JSON values only (what asdict() would copy unchanged): no dataclasses, models or media."""
    if value is None or isinstance(value, _PLAIN):
        return True
    if depth > 4:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(v, depth + 1) for v in value)
    return False


def _plain_dict(event: Any) -> dict | None:
    """The event as agno's to_dict() would give it, if all its set fields are plain values."""
    names = field_names(type(event))
    if "event" not in names:  # not an agno event dataclass: it serialises itself
        return None
    data = {}
    for name in names:
        value = getattr(event, name)
        if value is None:
            continue
        if not isinstance(value, _PLAIN) and not _is_plain(value):
            return None
        data[name] = value
    index = getattr(event, "event_index", None)
    if index is not None:
        data["event_index"] = index
    return data


def event_json(event: Any) -> str:
    """Compact JSON of a run event, identical to `event.to_json(separators=(",", ":"), indent=None)`."""
    data = _plain_dict(event)
    if data is None:
        return event.to_json(separators=(",", ":"), indent=None)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
