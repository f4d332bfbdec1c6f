"""Counting a provider call's tokens locally, for the calls whose provider never reported them.

Providers report a streamed call's usage in its last chunk, so a call cut off mid-stream (a
cancel, the run's deadline, a broken connection) has none; it still consumed its prompt and the
output it streamed, and is billed for them from this estimate, marked as estimated on its ledger
row (docs/COST.md).

The estimate is characters, not a tokenizer: `ceil(ASCII characters / 4)` plus one token per other
character, over the text the provider is sent (message text, tool calls and results, names, the
tool schemas as JSON) plus 4 tokens of framing per message and 3 for the reply, and a flat 765
tokens per image (OpenAI's figure for a 1024 x 1024 image at high detail). An exact count would
need each provider's own tokenizer, which none ships for offline use (tiktoken downloads its
tables at first use; Gemini's is not public), and it would still be one model family's. The
error bound, measured against OpenAI's o200k tokenizer, is in docs/COST.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# OpenAI's chat format spends about this many tokens framing each message, and the reply.
MESSAGE_FRAMING = 4
REPLY_FRAMING = 3
IMAGE_TOKENS = 765


def text_tokens(text: str) -> int:
    """Estimated tokens of `text`: a token per 4 ASCII characters (rounded up), one per other character."""
    if not text:
        return 0
    ascii_chars = len(text.encode("ascii", "ignore"))
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and item.get("type") == "text":
                parts.append(str(item.get("text") or ""))
            elif isinstance(item, dict) and item.get("type") in ("image_url", "input_image"):
                continue  # counted as an image
            else:
                parts.append(json.dumps(item, default=str))
        return " ".join(parts)
    return str(content)


def _tool_calls_text(tool_calls: Iterable[Any] | None) -> str:
    parts = []
    for call in tool_calls or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(str(function.get("name") or ""))
            parts.append(str(function.get("arguments") or ""))
    return " ".join(parts)


def message_tokens(message: Any) -> int:
    """Estimated tokens of one agno Message as a provider is sent it."""
    text = " ".join(filter(None, (
        _content_text(getattr(message, "content", None)),
        _tool_calls_text(getattr(message, "tool_calls", None)),
        getattr(message, "name", None) or "",
        getattr(message, "tool_call_id", None) or "",
    )))
    images = len(getattr(message, "images", None) or ())
    content = getattr(message, "content", None)
    if isinstance(content, list):
        images += sum(1 for item in content if isinstance(item, dict) and item.get("type") in ("image_url",
                                                                                             "input_image"))
    return MESSAGE_FRAMING + text_tokens(text) + IMAGE_TOKENS * images


def prompt_tokens(messages: Iterable[Any] | None, tools: Any = None) -> int:
    """Estimated input tokens of a call: its messages, its tool schemas, the reply's framing."""
    total = REPLY_FRAMING + sum(message_tokens(m) for m in messages or ())
    if tools:
        total += text_tokens(json.dumps(tools, default=str, separators=(",", ":")))
    return total


class TextCount:
    """Characters of text streamed in pieces, estimated as tokens once (no rounding per piece)."""

    def __init__(self) -> None:
        self.ascii_chars = 0
        self.other_chars = 0

    def add(self, text: str) -> None:
        if text:
            ascii_chars = len(text.encode("ascii", "ignore"))
            self.ascii_chars += ascii_chars
            self.other_chars += len(text) - ascii_chars

    @property
    def tokens(self) -> int:
        return (self.ascii_chars + 3) // 4 + self.other_chars


def delta_text(delta: Any) -> str:
    """The output text of one streamed delta (agno ModelResponse): content, reasoning, tool calls."""
    parts = [getattr(delta, "content", None), getattr(delta, "reasoning_content", None)]
    text = "".join(p for p in parts if isinstance(p, str))
    calls = getattr(delta, "tool_calls", None)
    return text + _tool_calls_text(calls) if calls else text
