"""The scripted model's scripts: the demo's routing, arithmetic and honesty."""

import pytest

from chat.agents.demo import DEMO_NOTICE, arithmetic, demo_script, route
from chat.agents.runtime import DELEGATE_TOOL
from chat.agents.scripted import ScriptedCall


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("What is 2+2?", "4"),
        ("what is 10/4", "2.5"),
        ("Calculate 2^10", "1024"),
        ("(3 + 4) * 6", "42"),
        ("7 x 6 =", "42"),
        ("And 3*3?", "9"),
    ],
)
def test_it_answers_arithmetic_exactly(text, answer):
    assert arithmetic(text) == answer


@pytest.mark.parametrize("text", ["What happened on 2024-11-27?", "What is 2024-11-27?", "Explain 3 examples",
                                  "Call me at 555-1234 tomorrow please", "1/0", "hello", "what is 5"])
def test_it_does_not_take_other_text_for_arithmetic(text):
    assert arithmetic(text) is None


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("Can you transcribe this podcast?", "audio-specialist"),
        ("Summarise this video clip", "video-specialist"),
        ("What is in this photo?", "image-specialist"),
        ("Review my contract document", "document-specialist"),
        ("Research the history of Copenhagen", "research-specialist"),
        ("Hello there", None),
    ],
)
def test_it_routes_a_message_to_the_specialist_it_is_about(text, member):
    assert route(text) == member


def test_attachments_route_by_media_kind():
    assert route("what do you think?", {"images": 1}) == "image-specialist"
    assert route("what do you think?", {"files": 2}) == "document-specialist"


def _call(**overrides) -> ScriptedCall:
    values = dict(
        model_label="leader", run_id="r1", parent_run_id=None, team_run_id=None, system="", tool_names=[DELEGATE_TOOL],
        roles=["system", "user"], user_text="hello", tool_results=[], members=[], media={}, stream=True,
    )
    values.update(overrides)
    return ScriptedCall(**values)


def test_the_demo_leader_delegates_then_summarises_honestly():
    first = demo_script(_call(user_text="Please research solar panels",
                              members=[("research-specialist", "Research Specialist")]))
    assert first.tool_calls and first.tool_calls[0].arguments == {
        "member_id": "research-specialist", "task": "Please research solar panels"}
    second = demo_script(_call(user_text="Please research solar panels", tool_results=["[Research] findings"]))
    assert second.text.startswith(DEMO_NOTICE) and "[Research] findings" in second.text


def test_the_demo_answers_greetings_itself_and_says_it_is_a_demo():
    turn = demo_script(_call(user_text="Hi!"))
    assert not turn.tool_calls and DEMO_NOTICE in turn.text


def test_the_demo_member_says_it_is_offline():
    turn = demo_script(_call(model_label="audio-specialist", tool_names=[], user_text="transcribe this"))
    assert "[Audio Specialist]" in turn.text and "offline demo" in turn.text
