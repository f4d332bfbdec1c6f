"""The local token count for provider calls cut off before reporting usage (chat.agents.token_estimate).

No tokenizer runs offline here, so the reference counts below were measured once with OpenAI's
o200k_base and cl100k_base encodings (js-tiktoken 1.x) on exactly these texts. docs/COST.md states
the bound they support; a change to the estimator that leaves it fails here.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chat.agents.token_estimate import MESSAGE_FRAMING, REPLY_FRAMING, TextCount, prompt_tokens, text_tokens

ENGLISH = ("Copenhagen is the capital and most populous city of Denmark. Originally a Viking fishing village "
           "established in the 10th century, it became the capital in the early 15th century. Beginning in the "
           "17th century it consolidated its position as a regional centre of power with its institutions, "
           "defences and armed forces. After suffering from the effects of plague and fire in the 18th century, "
           "the city underwent a period of redevelopment. Today the city is known for its cycling culture, its "
           "harbour baths, the Tivoli Gardens and the Little Mermaid statue, and it regularly tops lists of the "
           "most liveable cities in the world.")
DANISH = ("København er Danmarks hovedstad og største by. Byen ligger på øerne Sjælland og Amager, ved Øresund. "
          "Den blev grundlagt som en fiskerlandsby i det 10. århundrede og blev hovedstad i begyndelsen af det 15. "
          "århundrede. I dag er København kendt for sine cykelstier, sit havnebad, Tivoli og den lille havfrue. "
          "Hvis du vil vide mere om byens historie, kan jeg spørge vores forskningsspecialist, som kan finde kilder "
          "og give dig et grundigt overblik over udviklingen fra middelalderen til i dag. Æbleskiver spises især i "
          "december, ofte med flormelis og syltetøj, og de hører til den danske julehygge sammen med gløgg.")
CHINESE = ("哥本哈根是丹麦的首都和人口最多的城市。它最初是一个建立于十世纪的维京渔村，在十五世纪初成为首都。"
           "今天，这座城市以自行车文化、港口浴场、蒂沃利公园和小美人鱼雕像而闻名。")

# (text, o200k_base tokens, cl100k_base tokens), measured.
MEASURED = {"english": (ENGLISH, 127, 129), "danish": (DANISH, 174, 201), "chinese": (CHINESE, 69, 105)}


@pytest.mark.parametrize("name", list(MEASURED))
def test_the_estimate_stays_within_the_documented_bound_of_real_tokenizers(name):
    text, o200k, cl100k = MEASURED[name]
    estimate = text_tokens(text)
    for real in (o200k, cl100k):
        assert 0.75 * real <= estimate <= 1.25 * real, (name, estimate, real)


def test_streamed_pieces_count_like_the_whole_text():
    """Rounding happens once: a 1-character delta is not a token each."""
    count = TextCount()
    for char in ENGLISH:
        count.add(char)
    assert count.tokens == text_tokens(ENGLISH)


def test_a_prompt_counts_its_messages_tool_calls_and_tool_schemas():
    messages = [
        SimpleNamespace(role="system", content="abcd" * 10),
        SimpleNamespace(role="assistant", content=None,
                        tool_calls=[{"function": {"name": "delegate", "arguments": '{"a": 1}'}}]),
        SimpleNamespace(role="tool", content="done", tool_call_id="call_1"),
    ]
    plain = prompt_tokens(messages)
    assert plain == (REPLY_FRAMING + 3 * MESSAGE_FRAMING + 10 + text_tokens('delegate {"a": 1}')
                     + text_tokens("done call_1"))
    assert prompt_tokens(messages, [{"type": "function", "function": {"name": "delegate"}}]) > plain
