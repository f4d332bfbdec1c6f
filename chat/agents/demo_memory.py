"""The offline demo's memory, deterministic: "remember that ...", "forget ..." and "what do you
remember about ..." work without a provider, through the real tools and memory manager.

The leader (with memories on, so it has the memory tools) turns such a message into a tool call;
the memory manager's model (label `memory`) turns the task into agno's `add_memory` or
`delete_memory` call; both then say what happened. Anything else is left to chat.agents.demo.
"""

from __future__ import annotations

import json
import re

from .memory import MEMORY_AGENT, SEARCH_TOOL, UPDATE_TOOL
from .scripted import ScriptedCall, ToolCall, Turn

_REMEMBER = re.compile(r"^\s*(?:please\s+)?remember(?:\s+that)?[\s:,]+(?P<fact>.+?)\s*[.!]?\s*$", re.I | re.S)
_FORGET = re.compile(r"^\s*(?:please\s+)?forget(?:\s+that|\s+about)?[\s:,]+(?P<what>.+?)\s*[.!]?\s*$", re.I | re.S)
_RECALL = re.compile(r"\bwhat do you (?:remember|know)(?: about (?P<what>.+?))?\s*\??\s*$", re.I | re.S)
REMEMBER_TASK = "Remember this about the user: "
FORGET_TASK = "Forget the user's memory about: "
# Topic -> words that give a fact that topic (first match wins).
TOPICS: list[tuple[str, tuple[str, ...]]] = [
    ("name", ("my name", "call me", "i am called", "i'm called")),
    ("family", ("sister", "brother", "mother", "father", "wife", "husband", "son", "daughter", "family", "kids",
                "children", "partner")),
    ("work", ("work", "job", "office", "colleague", "boss", "nurse", "teacher", "engineer")),
    ("food", ("eat", "food", "coffee", "tea", "vegetarian", "vegan", "herring", "cook", "allergic")),
    ("location", ("live in", "living in", "i'm from", "i am from", "moved to")),
    ("hobbies", ("hobby", "play", "enjoy", "love", "like")),
]
_EXISTING = re.compile(r"^ID: (?P<id>\S+)\nMemory: (?P<memory>.*)$", re.M)


def topic_of(fact: str) -> str:
    lowered = f" {fact.lower()} "
    for topic, words in TOPICS:
        if any(word in lowered for word in words):
            return topic
    return "general"


def _sentence(fact: str) -> str:
    fact = fact.strip().rstrip(".!")
    return fact[:1].upper() + fact[1:] + "."


def leader_turn(call: ScriptedCall, notice: str) -> Turn | None:
    """The leader's turn when the message is about memory and memories are on; else None."""
    if UPDATE_TOOL not in call.tool_names:
        return None
    if call.tool_results and call.tool_result_names[-1:] == [SEARCH_TOOL]:
        return Turn(text=f"{notice} {_recalled(call.tool_results[-1])}")
    if call.tool_results and call.tool_result_names[-1:] == [UPDATE_TOOL]:
        if (match := _REMEMBER.match(call.user_text)) is not None:
            return Turn(text=f"{notice} I will remember that: {_sentence(match['fact'])}")
        return Turn(text=f"{notice} Done: {call.tool_results[-1].strip()}")
    if call.tool_results:
        return None
    if (match := _RECALL.search(call.user_text)) is not None:
        what = (match["what"] or "").strip().rstrip("?").strip()
        arguments = {} if what.lower() in ("", "me", "myself") else {"query": what}
        return Turn(tool_calls=[ToolCall(SEARCH_TOOL, arguments)])
    if (match := _REMEMBER.match(call.user_text)) is not None:
        return Turn(tool_calls=[ToolCall(UPDATE_TOOL, {"task": REMEMBER_TASK + match["fact"].strip()})])
    if (match := _FORGET.match(call.user_text)) is not None:
        return Turn(tool_calls=[ToolCall(UPDATE_TOOL, {"task": FORGET_TASK + match["what"].strip()})])
    return None


def _recalled(result: str) -> str:
    try:
        memories = json.loads(result)
    except ValueError:
        return "I do not remember anything about that."
    if not memories:
        return "I do not remember anything about that."
    return "Here is what I remember: " + " ".join(m["memory"] for m in memories)


def memory_turn(call: ScriptedCall) -> Turn | None:
    """The memory manager's model: the task becomes one add or delete; then it reports."""
    if call.model_label != MEMORY_AGENT:
        return None
    if call.tool_results:
        return Turn(text=" ".join(r.strip() for r in call.tool_results))
    task = call.user_text.strip()
    if task.startswith(REMEMBER_TASK):
        fact = task[len(REMEMBER_TASK):]
        return Turn(tool_calls=[ToolCall("add_memory", {"memory": _sentence(fact), "topics": [topic_of(fact)]})])
    if task.startswith(FORGET_TASK):
        words = [w for w in re.findall(r"\w+", task[len(FORGET_TASK):].lower()) if len(w) > 2]
        for match in _EXISTING.finditer(call.system):
            if words and all(w in match["memory"].lower() for w in words):
                return Turn(tool_calls=[ToolCall("delete_memory", {"memory_id": match["id"]})])
        return Turn(text="No memory matched, so nothing was forgotten.")
    return Turn(text="No change to the memories was needed.")
