"""OpenAI's chat-completions wire format, as bytes: chunk frames, a whole completion, errors.

Kept apart from the server so that the encoding (which the real ``openai`` SDK and agno
parse) can be read in one place. Everything returns ready-to-send bytes.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

from .script import Reply, ToolCall

# Streamed tool-call arguments are cut into pieces this long, as real providers do, so
# clients must reassemble them.
_ARGUMENT_PIECE_CHARS: Final = 16

# Ids must be unique across runs (agno stores tool-call ids), cheap to make (no uuid per
# delta) and recognisable in logs.
_ID_PREFIX: Final = secrets.token_hex(4)
_ids = itertools.count(1)


def new_id(kind: str) -> str:
    """A unique id such as ``chatcmpl-fake1a2b3c4d1f``."""
    return f"{kind}fake{_ID_PREFIX}{next(_ids):x}"


json_bytes_of = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Text is sent as UTF-8; a lone surrogate (which has no UTF-8 form; tests send one to see that
# Cirkelline copes) goes out as its JSON escape, as a provider with ensure_ascii output would.
_WIRE: Final = "backslashreplace"
_json_string: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
)

DONE: Final = b"data: [DONE]\n\n"
# What a truncated upstream line looks like: starts like a chunk, is not JSON.
MALFORMED: Final = (
    b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"delta":{"content":\n\n'
)


def to_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8 (lone surrogates escaped)."""
    return json_bytes_of(value).encode("utf-8", _WIRE)


class ChunkFrames:
    """Builds ``data: {chat.completion.chunk}\\n\\n`` frames for one response.

    The envelope (id, created, model, ...) is identical in every chunk of a response, so it
    is encoded once and only the delta is serialised per frame: with ~1000 concurrent
    streams the fake must not spend its CPU re-encoding constants.
    """

    __slots__ = ("_head", "_tail", "_final_tail", "_completion_id", "_created", "_model")

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        self._completion_id = completion_id
        self._created = created
        self._model = model
        envelope = (
            f'data: {{"id":{json_bytes_of(completion_id)},"object":"chat.completion.chunk","created":{created},'
            f'"model":{json_bytes_of(model)},"system_fingerprint":"fp_fake","choices":[{{"index":0,"delta":'
        )
        usage = ',"usage":null' if include_usage else ""
        self._head = envelope.encode()
        self._tail = f',"logprobs":null,"finish_reason":null}}]{usage}}}\n\n'.encode()
        self._final_tail = usage + "}\n\n"

    def delta(self, delta: Mapping[str, Any]) -> bytes:
        return self._head + to_bytes(delta) + self._tail

    def content(self, piece: str) -> bytes:
        """The common case, ``{"content": piece}``, without a general JSON encoder call."""
        return self._head + b'{"content":' + _json_string(piece).encode("utf-8", _WIRE) + b"}" + self._tail

    def finish(self, finish_reason: str) -> bytes:
        return self._head + f'{{}},"logprobs":null,"finish_reason":"{finish_reason}"}}]{self._final_tail}'.encode()

    def usage(self, usage: Mapping[str, int]) -> bytes:
        chunk = {
            "id": self._completion_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage,
        }
        return b"data: " + to_bytes(chunk) + b"\n\n"


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def tool_call_deltas(call: ToolCall) -> list[dict[str, Any]]:
    """A streamed tool call as OpenAI sends it: a first delta with the role, the call's id,
    type and name, then the arguments in pieces the client has to concatenate."""
    pieces = [
        call.arguments[i : i + _ARGUMENT_PIECE_CHARS] for i in range(0, len(call.arguments), _ARGUMENT_PIECE_CHARS)
    ]
    first = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"index": 0, "id": new_id("call_"), "type": "function", "function": {"name": call.name, "arguments": ""}}
        ],
    }
    return [first] + [{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces]


def completion_body(completion_id: str, created: int, model: str, reply: Reply, usage: dict[str, int]) -> bytes:
    """A whole (non-streamed) ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_call is not None:
        message["tool_calls"] = [
            {
                "id": new_id("call_"),
                "type": "function",
                "function": {"name": reply.tool_call.name, "arguments": reply.tool_call.arguments},
            }
        ]
    return to_bytes(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
            "usage": usage,
        }
    )


def error_body(message: str, error_type: str, code: str | None) -> bytes:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return to_bytes({"error": {"message": message, "type": error_type, "param": None, "code": code}})


def models_body(model: str) -> bytes:
    """``GET /v1/models``: a list holding the one configured model."""
    return to_bytes(
        {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "fake-provider"}]}
    )


EMBEDDING_DIMENSIONS = 384
# Words the fake's embedding treats as one meaning, so a test can find a chunk by a synonym that
# the lexical search cannot match.
SYNONYMS = {"car": "vehicle", "automobile": "vehicle", "auto": "vehicle", "vehicle": "vehicle",
            "salary": "pay", "wage": "pay", "pay": "pay", "income": "pay",
            # for the search quality corpus (tests/knowledge/corpus.py): what its by-meaning questions mean
            "pooch": "pet", "cat": "pet", "pets": "pet", "pet": "pet", "shots": "vaccination",
            "vaccinations": "vaccination", "commute": "travel", "travel": "travel", "kitty": "budget",
            "budget": "budget", "overtime": "overtime", "extra": "overtime"}


# Words the fake's embedding ignores, as a real embedding gives them little weight.
STOP_WORDS = frozenset(
    "a an the of to in on at for and or is are be do does did i my me you your it its what when how who which "
    "can may should must will with by from if so there this that get".split())


def embedding(text: str) -> list[float]:
    """A deterministic unit vector: each word but STOP_WORDS (or its synonym group) adds to one dimension."""
    import hashlib
    import math
    import re

    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        if word in STOP_WORDS:
            continue
        word = SYNONYMS.get(word, word)
        vector[int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % EMBEDDING_DIMENSIONS] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def embeddings_body(model: str, texts: list[str]) -> bytes:
    """OpenAI's embeddings response: one vector per input, usage one token per word."""
    import re

    tokens = sum(len(re.findall(r"\w+", t)) or 1 for t in texts)
    return to_bytes({"object": "list", "model": model,
                     "data": [{"object": "embedding", "index": i, "embedding": embedding(t)}
                              for i, t in enumerate(texts)],
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
