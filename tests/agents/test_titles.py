"""Titles from a model's reply (clean_title), the offline demo's titles (demo_title), the naming prompt."""

from __future__ import annotations

import pytest

from chat.agents.demo import demo_script
from chat.agents.scripted import ScriptedCall
from chat.agents.titles import MAX_CHARS, NAMING_LABEL, clean_title, demo_title, first_message_of, naming_prompt


@pytest.mark.parametrize(("reply", "title"), [
    ("Copenhagen through the centuries", "Copenhagen through the centuries"),
    ('"Copenhagen through the centuries."', "Copenhagen through the centuries"),
    ("“Københavns historie”", "Københavns historie"),
    ("Title: The **history** of Copenhagen.", "The history of Copenhagen"),
    ("## Sourdough basics\n\nA chat about bread.", "Sourdough basics"),
    ("<think>They ask about bread; keep it short.</think>\nSourdough basics", "Sourdough basics"),
    ('{"title": "Quantum computing explained"}', "Quantum computing explained"),
    ("one two three four five six seven eight nine ten", "one two three four five six seven eight"),
    ("  Rust\u202e ownership\u0000 rules  ", "Rust ownership rules"),
    ("Why is the sky blue?", "Why is the sky blue?"),
])
def test_a_reply_becomes_a_short_clean_title(reply, title):
    assert clean_title(reply) == title


@pytest.mark.parametrize("reply", ["", "   \n ", "Hello!", '"Hello"', "New chat", "Title: Greeting", "...", None,
                                   "<think>only thinking</think>", "```\n```"])
def test_a_reply_that_says_nothing_about_the_chat_is_no_title(reply):
    assert clean_title(reply) is None


def test_a_long_title_is_cut_at_a_word():
    title = clean_title(" ".join(["Supercalifragilisticexpialidocious"] * 4))
    assert len(title) <= MAX_CHARS and title.split() == ["Supercalifragilisticexpialidocious"] * 2


@pytest.mark.parametrize(("message", "title"), [
    ("Please research the history of Copenhagen in detail", "Research the history of Copenhagen"),
    ("Hi Cirkelline, can you explain quantum computing to me?", "Explain quantum computing"),
    ("\n\ncould you please summarise the attached document", "Summarise the attached document"),
    ("I want to learn Python", "Learn Python"),
    ("What is 12 * 34?", "What is 12 * 34"),
    ("hello", "Hello"),
])
def test_the_demo_names_a_chat_from_its_first_message(message, title):
    assert demo_title(message) == title == demo_title(message)  # deterministic


def test_the_demo_script_answers_a_naming_call_with_the_first_messages_title():
    prompt = naming_prompt("Please research the history of Copenhagen in detail", "It was founded around 1160.")
    assert first_message_of(prompt) == "Please research the history of Copenhagen in detail"
    call = ScriptedCall(model_label=NAMING_LABEL, run_id="r", parent_run_id=None, team_run_id="r", system="",
                        tool_names=[], roles=["system", "user"], user_text=prompt, tool_results=[], members=[],
                        media={}, stream=False)
    assert demo_script(call).text == "Research the history of Copenhagen"


def test_the_naming_prompt_bounds_what_it_shows():
    prompt = naming_prompt("x" * 10_000, "y" * 10_000)
    assert prompt.count("x") == 2000 and prompt.count("y") == 2000 and len(prompt) < 4200
