"""JSON in and out: what a client may send (strict JSON, storable text) and what the database can hold.

- In: `load_json` and `check_text` refuse, with a 400 saying what is wrong, JSON a run cannot
  carry: NaN/Infinity, a key repeated in one object, NUL characters and lone UTF-16 surrogates
  (no database stores them, and a surrogate has no UTF-8 form for the event stream), and nesting
  deeper than CIRKELLINE_MAX_JSON_DEPTH. Every transport uses them (HTTP bodies, websocket frames).
- Out: `PayloadEncoder` (the JSON fields' encoder) and `storable` make what agno and the
  providers produce storable on every database.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import dataclasses
import enum
import functools
import json
import math
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from .errors import BadRequest

# UTF-16 surrogate escapes in JSON text: a pair (one astral character, e.g. an emoji) or a lone half.
_SURROGATE_ESCAPE = re.compile(r"\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|\\ud[89a-f][0-9a-f]{2}", re.IGNORECASE)


def _has_lone_surrogate_escape(json_text: str) -> bool:
    return any(len(match.group()) == 6 for match in _SURROGATE_ESCAPE.finditer(json_text))


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a lone UTF-16 surrogate (then it has no UTF-8 form)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _storable_text(value: str) -> str:
    value = value.replace("\x00", "\ufffd")
    if has_lone_surrogate(value):
        value = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value


def storable(value):
    """`value` with what a database cannot hold replaced: NUL characters (PostgreSQL text and
    jsonb reject them) and lone surrogates (no UTF-8 form) become U+FFFD, NaN/Infinity (not
    JSON) become None."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable(k) if isinstance(k, str) else k: storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


class PayloadEncoder(DjangoJSONEncoder):
    """JSON for agno payloads: enums by value, bytes as base64, dataclasses and models as dicts.

    The output is always storable on PostgreSQL too: a model answer with a NUL character or a
    tool result with NaN would otherwise make the run's final write fail. Checking costs a
    substring search or two; only a payload that needs it is cleaned and encoded again.
    """

    def __init__(self, *args, **kwargs):
        kwargs["allow_nan"] = False  # NaN/Infinity are not JSON; PostgreSQL refuses them
        super().__init__(*args, **kwargs)

    def encode(self, o):
        try:
            text = super().encode(o)
        except ValueError:  # NaN or Infinity somewhere
            text = None
        if text is None or "\\u0000" in text or ("\\ud" in text and _has_lone_surrogate_escape(text)):
            text = super().encode(storable(json.loads(json.dumps(o, default=self.default))))
        return text

    def default(self, o):
        if isinstance(o, enum.Enum):
            return o.value
        if isinstance(o, (bytes, bytearray)):
            return base64.b64encode(bytes(o)).decode("ascii")
        if isinstance(o, (set, frozenset)):
            return list(o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if hasattr(o, "model_dump"):
            return o.model_dump(mode="json")
        try:
            return super().default(o)
        except TypeError:
            return str(o)


# --- what a client may send ---------------------------------------------------------------

T = TypeVar("T")
_parse_pool: ThreadPoolExecutor | None = None
_parse_thread = threading.local()
# In a parse thread, the parser pauses every this many objects (and the text check every this
# many values) for YIELD_SECONDS. A thread holding the interpreter keeps it for the switch
# interval (5 ms) whenever the loop's thread asks for it, and serving one request asks many times
# (every socket call gives it up): without the pauses, eight large bodies being parsed slowed
# /health to a third of a second. A pause lets the loop's thread take it at once.
YIELD_EVERY = 256
YIELD_SECONDS = 0.0001


def _mark_parse_thread() -> None:
    _parse_thread.yielding = True


def _pausing(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    count = 0

    def paused(pairs: Any) -> Any:
        nonlocal count
        count += 1
        if count % YIELD_EVERY == 0:
            time.sleep(YIELD_SECONDS)
        return hook(pairs)

    return paused


def parses_off_loop(size: int) -> bool:
    """Whether input of `size` bytes (or characters) is parsed in the parse threads (see `parse`)."""
    return size > settings.CIRKELLINE_PARSE_OFF_LOOP_BYTES


async def parse(size: int, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, a parse of client input of `size` bytes: on the event loop when it is small,
    in one of CIRKELLINE_PARSE_THREADS threads when it is larger than CIRKELLINE_PARSE_OFF_LOOP_BYTES
    (parsing JSON costs ~0.2 s of CPU per MiB of small objects; on the loop that would be a stall
    for every request of the process). The strict parser calls back into Python for every object,
    so the thread hands the interpreter back to the loop at every switch interval; the pool's size
    bounds how much of the process hostile bodies can take, and they queue behind each other."""
    if not parses_off_loop(size):
        return fn(*args)
    global _parse_pool
    if _parse_pool is None:
        _parse_pool = ThreadPoolExecutor(max_workers=settings.CIRKELLINE_PARSE_THREADS,
                                         thread_name_prefix="cirkelline-parse", initializer=_mark_parse_thread)
    context = contextvars.copy_context()  # the request id, for log lines written while parsing
    return await asyncio.get_running_loop().run_in_executor(_parse_pool, functools.partial(context.run, fn, *args))



def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(what: str, pairs: list[tuple[str, Any]]) -> dict:
    """An object whose keys are all different: with a repeated key, json.loads keeps the last
    value silently, so `{"user_id": 2, "user_id": 1}` would mean what a proxy checking the first
    one did not see."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BadRequest(400, f"{what} repeats the key {quoted_name(key)}: send each key once.")
            seen.add(key)
    return value


def quoted_name(key: str) -> str:
    """A client-chosen field name, quoted and cut short, for an error message."""
    return repr(key[:64])


def _too_deep(what: str) -> BadRequest:
    limit = settings.CIRKELLINE_MAX_JSON_DEPTH
    return BadRequest(400, f"{what} is nested too deeply: the limit is {limit} levels of objects and arrays.")


def load_json(raw: str | bytes, what: str, *, invalid: str | None = None, envelope: bool = False) -> Any:
    """Strict JSON: the value, or a 400 saying what is wrong.

    Refused: what is not JSON (`invalid`, if given, is that message), NaN/Infinity, a key repeated
    in one object, text no database can store (see `check_text`), and nesting deeper than
    CIRKELLINE_MAX_JSON_DEPTH (agno serialises and copies these values recursively, so a deep one
    fails the run after it was billed). An `envelope` is a request body: the limit applies to each
    of its fields, and the error names the field.
    """
    try:
        hook = functools.partial(_unique_keys, what)
        if getattr(_parse_thread, "yielding", False):
            hook = _pausing(hook)
        value = json.loads(raw, parse_constant=_no_constant, object_pairs_hook=hook)
    except RecursionError:
        raise _too_deep(what) from None
    except ValueError:
        raise BadRequest(400, invalid or f"{what} is not valid JSON.") from None
    limit = settings.CIRKELLINE_MAX_JSON_DEPTH
    if envelope and isinstance(value, dict):
        for key, item in value.items():
            check_text(what, key)
            check_text(quoted_name(key), item, max_depth=limit)
    else:
        check_text(what, value, max_depth=limit + 1 if envelope else limit)
    return value


def check_text(what: str, value: Any, *, max_depth: int | None = None) -> None:
    """400 if a string anywhere in `value` holds what cannot be stored or sent: a NUL character
    (no database keeps it) or a lone UTF-16 surrogate (JSON's `"\\ud800"` decodes to one; it has
    no UTF-8 form, so neither the database nor the event stream could encode it); or if objects
    and arrays nest more than `max_depth` levels. Walked with a stack, not recursion, so no input
    can exhaust the interpreter's recursion limit here."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    pausing = getattr(_parse_thread, "yielding", False)
    count = 0
    while stack:
        item, depth = stack.pop()
        if pausing:
            count += 1
            if count % (YIELD_EVERY * 16) == 0:
                time.sleep(YIELD_SECONDS)
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest(400, f"{what} contains a NUL character.")
            if has_lone_surrogate(item):
                raise BadRequest(400, f"{what} contains an unpaired surrogate (not valid Unicode).")
        elif isinstance(item, (dict, list)):
            depth += 1
            if max_depth is not None and depth > max_depth:
                raise _too_deep(what)
            if isinstance(item, dict):
                for key, child in item.items():
                    stack.append((key, depth))
                    stack.append((child, depth))
            else:
                stack.extend((child, depth) for child in item)
