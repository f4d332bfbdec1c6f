"""What the fake provider answers: the auto script a team meets, and the token counts it reports.

The default script: a request that offers the agno team tool ``delegate_task_to_member`` and
has no ``role: "tool"`` message after the last user message is answered with
``delegate_task_to_member(member_id=<first <member id="..."> in the system message>, task=<last
user message>)``; everything else gets a deterministic text answer (``compose_answer``).
Usage is ``ceil(chars / 4)`` of the prompt and of the answer, so tests can assert it exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .behaviours import Behaviour

DELEGATE_TOOL: Final = "delegate_task_to_member"

# agno renders its roster as `<member id="research-specialist" name="Research Specialist">`.
_MEMBER_ID_RE: Final = re.compile(r'<member id="([^"]*)"')


def _text_parts(message: Mapping[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return []


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string or a list of typed parts (joined by
    spaces; non-text parts such as images are ignored)."""
    return " ".join(_text_parts(message))


def _message_chars(message: Mapping[str, Any]) -> int:
    chars = sum(len(part) for part in _text_parts(message))
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            chars += len(str(function.get("name") or "")) + len(str(function.get("arguments") or ""))
    return chars


def estimate_tokens(chars: int) -> int:
    """``ceil(chars / 4)``: the usual rule of thumb, deterministic so tests can assert it."""
    return (chars + 3) // 4


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Tokens of a prompt: all message text (string content or text parts) plus the name
    and arguments of any assistant tool calls, divided by 4, rounded up. Tool schemas and
    roles are not counted."""
    return estimate_tokens(sum(_message_chars(m) for m in messages if isinstance(m, dict)))


def tool_names(body: Mapping[str, Any]) -> list[str]:
    """The names of the function tools a request offers."""
    names = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def include_usage(body: Mapping[str, Any]) -> bool:
    """Whether a streamed request asked for the final usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _since_last_user(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The last user message's text and the messages after it."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return message_text(messages[index]), messages[index + 1 :]
    return "", messages


def first_member_id(messages: list[dict[str, Any]]) -> str | None:
    """The first ``<member id="...">`` in the system / developer messages (agno's roster)."""
    for message in messages:
        if message.get("role") in ("system", "developer"):
            found = _MEMBER_ID_RE.search(message_text(message))
            if found:
                return found.group(1)
    return None


def compose_answer(prefix: str, seed: str, answer_words: int) -> str:
    """A deterministic answer: ``prefix``, then up to ``answer_words`` words of ``seed``,
    then filler ``tok1 tok2 ...`` until the answer has ``answer_words`` words.

    Quoting the seed (the user's message, or the tool results a leader got back) lets a
    test see what reached the model; the filler makes answers long enough to stream as
    many deltas. The answer has ``max(answer_words, words(prefix) + min(words(seed),
    answer_words))`` words.
    """
    words = prefix.split() + seed.split()[:answer_words]
    filler = 1
    while len(words) < answer_words:
        words.append(f"tok{filler}")
        filler += 1
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call to answer with; ``arguments`` stays text so a test may send invalid JSON."""

    name: str
    arguments: str  # JSON text, as on the wire


@dataclass(frozen=True, slots=True)
class Reply:
    """The content of one response: text, or a tool call."""

    text: str | None = None
    tool_call: ToolCall | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call is not None else "stop"

    @property
    def completion_tokens(self) -> int:
        if self.tool_call is not None:
            return estimate_tokens(len(self.tool_call.name) + len(self.tool_call.arguments))
        return estimate_tokens(len(self.text or ""))


def script_reply(body: Mapping[str, Any], behaviour: Behaviour, *, answer_words: int, member_id: str | None) -> Reply:
    """Decide what a request gets (forced content first, then the auto script)."""
    if behaviour.text is not None:
        return Reply(text=behaviour.text)
    if behaviour.tool_name is not None:
        arguments = behaviour.tool_arguments
        encoded = arguments if isinstance(arguments, str) else json.dumps(dict(arguments or {}), ensure_ascii=False)
        return Reply(tool_call=ToolCall(behaviour.tool_name, encoded))

    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    user_text, after_user = _since_last_user(messages)
    tool_results = [message_text(m) for m in after_user if m.get("role") == "tool"]
    if DELEGATE_TOOL in tool_names(body) and not tool_results:
        member = behaviour.member_id if behaviour.member_id is not None else member_id
        if member is None:
            member = first_member_id(messages)
        if member is not None:
            task = user_text if behaviour.task is None else behaviour.task
            arguments = json.dumps({"member_id": member, "task": task}, ensure_ascii=False)
            return Reply(tool_call=ToolCall(DELEGATE_TOOL, arguments))
    if tool_results:
        return Reply(text=compose_answer("Summary of results:", " ".join(tool_results), answer_words))
    return Reply(text=compose_answer("Answer to:", user_text, answer_words))


def split_words(text: str, chunk_words: int) -> list[str]:
    """Cut ``text`` into deltas of ``chunk_words`` words that concatenate back to it."""
    pieces = re.findall(r"\s*\S+", text)
    if not pieces:
        return [text] if text else []
    deltas = ["".join(pieces[i : i + chunk_words]) for i in range(0, len(pieces), chunk_words)]
    trailing = text[len("".join(pieces)) :]
    if trailing:
        deltas[-1] += trailing
    return deltas
