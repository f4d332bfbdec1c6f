"""Client frames of the chat websocket: parsed strictly, and the fields the consumer reads checked.

The consumer routes a frame by its `type`; what a frame must look like lives here, so each check
is spelled once (a run id, say, is checked the same way for `continue` and `cancel`). Every
failure is a BadRequest, which the consumer answers with an error frame (chat.ws.frames).
The protocol is documented in docs/API.md.
"""

from __future__ import annotations

from typing import Any

from chat.errors import BadRequest
from chat.models import validate_session_id
from chat.payload import load_json, parse

# Fields of a `run` frame handed to the run API's checks (the rest of a frame is ignored).
RUN_FIELDS = ("message", "session_id", "deep_research", "session_state", "dependencies", "metadata",
              "stream_events", "user_id")
# Fields of a `continue` frame handed to the continue checks (chat.runs.pause).
CONTINUE_FIELDS = ("requirements", "session_id", "stream_events", "user_id")


async def read(text_data: str | None) -> dict:
    """The frame's JSON object, with a string `type`. Strict (no NaN, NUL or lone surrogates); a
    large frame is parsed off the loop (chat.payload.parse)."""
    if text_data is None:
        raise BadRequest(400, "Frames must be JSON text.")
    content = await parse(len(text_data), load_json, text_data, "The frame")
    if not isinstance(content, dict) or not isinstance(content.get("type"), str):
        raise BadRequest(400, "A frame must be a JSON object with a 'type'.")
    return content


def fields(content: dict, names: tuple[str, ...]) -> dict:
    """The frame's fields among `names` (RUN_FIELDS, CONTINUE_FIELDS), for the run API's checks."""
    return {name: content[name] for name in names if name in content}


def run_id(value: Any) -> str:
    """A `run_id` field (of `continue` and `cancel`): required, and shaped like the ids we generate."""
    if not isinstance(value, str):
        raise BadRequest(400, "'run_id' is required.")
    try:
        validate_session_id(value)
    except BadRequest:
        raise BadRequest(400, "Invalid run id.") from None
    return value


def after_map(after: Any) -> dict[str, int]:
    """`watch`'s `after`: {run id: last seq received}, or one seq for every run ("*")."""
    if after is None:
        return {}
    if isinstance(after, int) and not isinstance(after, bool):
        after = {"*": after}
    if not isinstance(after, dict) or len(after) > 100:
        raise BadRequest(400, "'after' must be an object mapping run ids to the last seq received, or an integer.")
    for key, value in after.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < -1:
            raise BadRequest(400, "'after' values must be integers of -1 or more.")
        if key != "*":
            validate_session_id(key)
    return after
