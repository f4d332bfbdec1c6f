"""agno's delegation tool derived once per process, for teams on Cirkelline's models (drift-tested).

`SharedDerivations`: agno's per-closure introspection cache, for the delegation tool of a team on
Cirkelline's models, made to share its results between the closures of one code (a saving: agno
rebuilds `delegate_task_to_member` as a new closure every run and derived its JSON schema and
signature facts from scratch twice per run; docs/PERFORMANCE.md). Its argument validator too:
pydantic's `validate_call` validator is built once per code around a stand-in with the closure's
signature (`_arguments_validator`), and each run's closure gets agno's wrapper shape validating
with it (`_validating_shim`) instead of a validator compiled per run (a saving: the "delegation
tool's per-run derivation" in docs/PERFORMANCE.md). `share_delegation_derivations` installs it.
It depends on agno's (and pydantic's) private code as of the pinned versions: the drift test
records a hash of each upstream function's source and names the override to re-check when one
changes (tests/agents/test_agno_drift.py).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator
from typing import Any

from .stream_overrides import AgnoModelOverrides

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
