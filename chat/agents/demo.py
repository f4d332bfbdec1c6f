"""The offline demo's script: honest about being a demo, delegates visibly, answers arithmetic exactly.

`demo_script` decides what the scripted model (chat.agents.scripted) says in the `demo` model
(`CIRKELLINE_MODEL=demo`, the default without keys) and the `scripted` one (tests, benchmarks):
the leader delegates to the specialist a message is about (`route`), anyone asked an
arithmetic question answers it exactly (`arithmetic`), "remember that ...", "forget ..." and
"what do you remember about ..." use the memory tools (chat.agents.demo_memory), a question about
"my documents" (or files) searches them and answers citing document and chunk, and a naming
call gets a title made from the chat's first message alone (chat.agents.titles.demo_title),
deterministic and offline.
"""

from __future__ import annotations

import ast
import json
import operator
import re

from .demo_memory import leader_turn, memory_turn
from .hitl import DEEP_RESEARCH_TOOL, USER_INPUT_TOOL
from .knowledge import SEARCH_TOOL as DOCUMENTS_TOOL
from .runtime import DELEGATE_TOOL
from .scripted import ScriptedCall, ToolCall, Turn
from .titles import NAMING_LABEL, demo_title, first_message_of

# Specialist ids (chat/agents/specialists.py) and the words that send a message to each, most specific first.
ROUTES: list[tuple[str, tuple[str, ...]]] = [
    ("audio-specialist", ("audio", "sound", "music", "song", "podcast", "voice", "transcri", "speech", "mp3", "wav")),
    ("video-specialist", ("video", "film", "movie", "clip", "footage", "youtube", "mp4")),
    ("image-specialist", ("image", "picture", "photo", "drawing", "illustrat", "logo", "diagram", "png", "jpg")),
    ("document-specialist", ("document", "pdf", "docx", "contract", "spreadsheet", "report", "invoice", "memo")),
    ("research-specialist", ("research", "find out", "search", "investigate", "compare", "sources", "latest",
                             "explain", "history of", "why ", "who ")),
]
_MEDIA_ROUTES = {"images": "image-specialist", "audio": "audio-specialist", "videos": "video-specialist",
                 "files": "document-specialist"}


def route(text: str, media: dict[str, int] | None = None) -> str | None:
    """The specialist a message is about, or None when the leader should answer itself."""
    for kind, member in _MEDIA_ROUTES.items():
        if media and media.get(kind):
            return member
    lowered = f" {text.lower()} "
    for member, words in ROUTES:
        if any(word in lowered for word in words):
            return member
    return None


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_EXPR_RE = re.compile(r"[-+(]*\d[\d\s.+\-*/%()^×÷x]*")


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 10**6):
            raise ValueError("exponent too large")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    raise ValueError("not arithmetic")


_MATH_CUE_RE = re.compile(r"\b(what is|what's|calculate|compute|how much is|solve|evaluate)\b|=\s*\??\s*$", re.I)


_DATE_RE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")


def arithmetic(text: str) -> str | None:
    """The exact value of the arithmetic question in `text` ("What is 2+2?" -> "4"), else None.

    Only when the message asks for it ("what is", "calculate", a trailing "=") or is little
    more than the expression, so a date such as 2024-11-27 in a sentence is not taken for a
    subtraction.
    """
    cue = bool(_MATH_CUE_RE.search(text))
    for match in sorted(_EXPR_RE.findall(text), key=len, reverse=True):
        expr = match.strip()
        rest = text.replace(match, " ", 1)
        if _DATE_RE.match(expr) or not (cue or len(re.findall(r"[A-Za-z]+", rest)) <= 2):
            continue
        expr = expr.replace("^", "**").replace("×", "*").replace("÷", "/").replace("x", "*")
        if not any(op in expr for op in "+-*/%") or expr.lstrip("+-").replace(".", "").isdigit():
            continue
        try:
            value = _eval(ast.parse(expr, mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
            continue
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                continue
            if value.is_integer():
                return str(int(value))
            return f"{value:.10g}"
        return str(value)
    return None


# The demo's human in the loop (chat.agents.hitl), deterministic: "ask me" makes the leader ask for a
# field (agno's get_user_input), "deep research" makes it ask to confirm a deep research first.
ASK_CUE, DEEP_RESEARCH_CUE = "ask me", "deep research"
ASK_FIELD = {"field_name": "focus", "field_type": "str", "field_description": "What should the answer focus on?"}
CONFIRMED_PREFIX = "The user confirmed"


def hitl_turn(call: ScriptedCall) -> Turn | None:
    """The leader's turn when it asks its user (or hears back), else None."""
    text = call.user_text.lower()
    last = call.tool_result_names[-1] if call.tool_result_names else None
    if last == USER_INPUT_TOOL:
        return Turn(text=f"{DEMO_NOTICE} Thank you. {call.tool_results[-1].strip()}")
    if last == DEEP_RESEARCH_TOOL:
        if call.tool_results[-1].startswith(CONFIRMED_PREFIX):
            return Turn(tool_calls=[ToolCall(DELEGATE_TOOL, {"member_id": "research-specialist",
                                                             "task": call.user_text})])
        return Turn(text=f"{DEMO_NOTICE} Understood: no deep research. A short answer instead.")
    if DEEP_RESEARCH_TOOL in call.tool_result_names and last == DELEGATE_TOOL:
        return Turn(text=f"{DEMO_NOTICE} The deep research is done: {call.tool_results[-1].strip()}")
    if call.tool_results:
        return None
    if ASK_CUE in text and USER_INPUT_TOOL in call.tool_names:
        return Turn(tool_calls=[ToolCall(USER_INPUT_TOOL, {"user_input_fields": [ASK_FIELD]})])
    if DEEP_RESEARCH_CUE in text and DEEP_RESEARCH_TOOL in call.tool_names:
        return Turn(tool_calls=[ToolCall(DEEP_RESEARCH_TOOL, {"topic": call.user_text[:200]})])
    return None


DEMO_NOTICE = "(Offline demo: no AI provider is configured, so these answers are scripted.)"
_DOCUMENTS_CUE = re.compile(r"\bmy (?:documents?|files?|uploads?)\b", re.I)


def documents_turn(call: ScriptedCall) -> Turn | None:
    """The leader's turn for a question about the user's documents: search them, then quote what
    was found with its citation ([document, chunk N]); else None."""
    if DOCUMENTS_TOOL in call.tool_result_names:
        try:
            found = json.loads(call.tool_results[call.tool_result_names.index(DOCUMENTS_TOOL)])
        except ValueError:
            return Turn(text=f"{DEMO_NOTICE} I found nothing about that in your documents.")
        quotes = [f"> {hit['text'][:300]}\n\n[{hit['document']}, chunk {hit['chunk']}]" for hit in found["results"][:3]]
        return Turn(text=f"{DEMO_NOTICE} From your documents:\n\n" + "\n\n".join(quotes))
    if call.tool_results or DOCUMENTS_TOOL not in call.tool_names or not _DOCUMENTS_CUE.search(call.user_text) \
            or any(call.media.values()):  # files attached to the message go to their specialist
        return None
    return Turn(tool_calls=[ToolCall(DOCUMENTS_TOOL, {"query": call.user_text[:300]})])


def demo_script(call: ScriptedCall) -> Turn:
    """The offline demo: honest about itself, delegates visibly, exact arithmetic, remembers
    (chat.agents.demo_memory) when the user has memories on, titles from the first message."""
    if call.model_label == NAMING_LABEL:
        return Turn(text=demo_title(first_message_of(call.user_text)))
    remembered = memory_turn(call) or (leader_turn(call, DEMO_NOTICE) if call.is_leader else None)
    if remembered is not None:
        return remembered
    if call.is_leader:
        searched = documents_turn(call)
        if searched is not None:
            return searched
        paused = hitl_turn(call)
        if paused is not None:
            return paused
        if call.tool_results:
            findings = " ".join(r.strip() for r in call.tool_results if r.strip()) or "(no answer)"
            return Turn(text=f"{DEMO_NOTICE} Here is what my specialist found: {findings}")
        answer = arithmetic(call.user_text)
        if answer is not None:
            return Turn(text=answer)
        member = route(call.user_text, call.media)
        member_ids = {m for m, _ in call.members}
        if member and (not member_ids or member in member_ids):
            return Turn(tool_calls=[ToolCall(DELEGATE_TOOL, {"member_id": member, "task": call.user_text})])
        return Turn(
            text=(
                f"{DEMO_NOTICE} I am Cirkelline. I received: \"{call.user_text[:200]}\". Ask me about "
                "research, audio, video, images or documents to see a specialist at work, or try "
                "an arithmetic question such as 2+2."
            )
        )
    answer = arithmetic(call.user_text)
    if answer is not None:
        return Turn(text=answer)
    name = call.model_label.replace("-", " ").title()
    return Turn(
        text=(
            f"[{name}] In offline demo mode I cannot analyse \"{call.user_text[:200]}\" for real; "
            "with a model configured I would handle this task."
        )
    )
