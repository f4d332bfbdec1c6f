"""A chat's title from the model: the prompt that asks for one, and the cleaning of what comes back.

Plain text work, no agno: the naming call (chat.agents.naming) sends `naming_prompt`, the demo
model answers it offline from the first message alone (`demo_title`, chat.agents.demo), and
`clean_title` turns a model's reply into a title or rejects it (None: the session keeps its
first message's name).
"""

from __future__ import annotations

import json
import re
import unicodedata

# The model a naming call is built for (chat.agents.providers' `label`): the demo script knows
# its calls by it.
NAMING_LABEL = "naming"
MAX_WORDS = 8
MAX_CHARS = 80
# What the model is shown of the conversation: enough to name it, bounded in cost.
PROMPT_CHARS = 2000

INSTRUCTIONS = [
    "You give chats their titles. Read the user's first message and the answer, then reply with a "
    "short, specific title of 3 to 8 words that says what the chat is about, in the language of "
    "the user's message.",
    "Reply with the title only: no quotes, no 'Title:', no emoji, no full stop at the end.",
    "Never a greeting or a generic title such as 'Hello', 'Greeting', 'New chat' or 'Question'.",
]

# Titles that say nothing about a chat: a reply that is one of these keeps the first message's name.
GENERIC = frozenset({
    "hello", "hi", "hey", "hello there", "hi there", "greeting", "greetings", "chat", "new chat", "a chat",
    "conversation", "new conversation", "untitled", "untitled chat", "title", "question", "a question",
    "help", "request", "user request", "assistance", "general", "general question", "general chat",
    "small talk", "none", "n/a", "no title",
})
_QUOTES = "\"'`“”‘’«»„‚‹›"
_THINKING = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|$)", re.S | re.I)
_PREFIX = re.compile(r"^(chat\s+)?title\s*[:\-–—]\s*", re.I)
_MARKUP = re.compile(r"^[#>*_\-•\s]+|[*_]+$")
_EMPHASIS = re.compile(r"\*\*|__|`")
_MESSAGE = re.compile(r"<message>\n(.*?)\n</message>\n<answer>", re.S)


def _bounded(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def naming_prompt(first_message: str, answer: str) -> str:
    """The user message of a naming call: the chat's first message and its answer, each bounded."""
    return (f"<message>\n{_bounded(first_message, PROMPT_CHARS)}\n</message>\n"
            f"<answer>\n{_bounded(answer, PROMPT_CHARS)}\n</answer>\n"
            "Title of this chat:")


def first_message_of(prompt: str) -> str:
    """The first message a naming prompt carries (`naming_prompt`), or the prompt itself."""
    match = _MESSAGE.search(prompt)
    return match.group(1) if match else prompt


def _printable(text: str) -> str:
    # Control and format characters (a NUL, a bidi override) have no place in a title.
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch == " ")


def clean_title(reply: str | None) -> str | None:
    """A title from a model's reply, or None when the reply is no usable title.

    Reasoning blocks, a JSON wrapper ({"title": ...}), a "Title:" prefix, markdown, quotes and a
    final full stop go; the first line with words is kept, at most MAX_WORDS words and MAX_CHARS
    characters (cut at a word). Empty, generic ("Hello", "New chat") or wordless replies are None.
    """
    if not isinstance(reply, str):
        return None
    text = _THINKING.sub(" ", reply).strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("title"), str):
            text = value["title"]
    line = next((ln for ln in (_printable(raw).strip() for raw in text.splitlines()) if re.search(r"\w", ln)), "")
    line = _EMPHASIS.sub("", _MARKUP.sub("", _PREFIX.sub("", line))).strip()
    line = line.strip(_QUOTES + " ").rstrip(".:;,").strip(_QUOTES + " ")
    words = line.split()[:MAX_WORDS]
    title = ""
    for word in words:
        candidate = f"{title} {word}".strip()
        if len(candidate) > MAX_CHARS:
            break
        title = candidate
    title = title.rstrip(".:;,-–—").strip(_QUOTES + " ")
    if not re.search(r"\w", title) or title.lower().strip("!?. ") in GENERIC:
        return None
    return title


# Words a first message opens with that say nothing about its subject.
_OPENING = re.compile(
    r"^(?:(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))(?:\s+cirkelline)?[\s,!.:;-]+)*"
    r"(?:(?:please|pls|kindly)\s+)?(?:(?:can|could|would|will) you\s+)?(?:(?:please|kindly)\s+)?"
    r"(?:i (?:want|need|would like) (?:you )?to\s+)?",
    re.I,
)
_TRAILING = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to",
                       "with", "about", "please", "me", "my"})
DEMO_WORDS = 6


def demo_title(first_message: str) -> str:
    """The offline demo's title of a chat: deterministic, from its first message alone.

    Its first line without a greeting or a polite opening, at most DEMO_WORDS words, no dangling
    small word at the end, first letter capitalised: "Please research the history of Copenhagen in
    detail" -> "Research the history of Copenhagen". "" when nothing is left (then the first
    message's name stays).
    """
    line = next((ln.strip() for ln in first_message.splitlines() if ln.strip()), "")
    words = _OPENING.sub("", line).split()[:DEMO_WORDS]
    words = [w.strip(".,;:!?\"'()[]") or w for w in words]
    while words and words[-1].lower() in _TRAILING:
        words.pop()
    title = " ".join(w for w in words if w)
    return title[:1].upper() + title[1:]
