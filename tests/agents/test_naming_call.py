"""The naming call without an agno Agent (chat.agents.naming): the provider is sent what an Agent
with the naming instructions would send, and the reply's title, tokens and failure are read as
the Agent's run output gave them."""

from __future__ import annotations

import pytest
from agno.agent import Agent

from chat.agents import naming
from chat.agents.providers import ModelSpec, build_model
from chat.agents.titles import INSTRUCTIONS, NAMING_LABEL, naming_prompt
from tests.doubles.fake_openai import Behaviour, FakeProvider

SPEC = ModelSpec("openai-like", "fake")
FIRST, ANSWER = "Hvad er historien om København?", "København blev grundlagt som en fiskerby ..."


@pytest.fixture
def provider(settings):
    settings.CIRKELLINE_MAX_RETRIES = 0
    with FakeProvider() as fake:
        settings.CIRKELLINE_MODEL_BASE_URL = fake.base_url
        yield fake


async def test_the_provider_gets_what_an_agno_agent_would_send(provider):
    """Guards against the reproduced prompt drifting from agno's (a change in how an Agent writes its
    instructions would change every title's prompt and its bill)."""
    provider.enqueue(Behaviour.say("København's history"), Behaviour.say("København's history"))
    reply = await naming.ask_for_title(first_message=FIRST, answer=ANSWER, run_id="r1", user_id=1, spec=SPEC)
    agent = Agent(id=NAMING_LABEL, name="Chat naming", model=build_model(NAMING_LABEL, SPEC),
                  instructions=list(INSTRUCTIONS), markdown=False, telemetry=False, retries=0)
    output = await agent.arun(input=naming_prompt(FIRST, ANSWER), stream=False, run_id="r2", user_id="1")
    ours, agents = (request.body for request in provider.requests[-2:])
    assert ours == agents
    assert reply.title == output.content == "København's history"
    assert reply.tokens["total_tokens"] == output.metrics.total_tokens > 0
    assert reply.tokens["input_tokens"] == output.metrics.input_tokens
    assert (reply.calls, reply.failed, reply.model, reply.provider) == (1, False, "fake", "openai-like")


@pytest.mark.parametrize("behaviour", [Behaviour.http_error(500), Behaviour.rate_limited(retry_after="0")],
                         ids=["500", "429"])
async def test_a_failed_call_is_reported_not_raised(provider, behaviour):
    provider.enqueue(behaviour)
    reply = await naming.ask_for_title(first_message=FIRST, answer=ANSWER, run_id="r1", user_id=1, spec=SPEC)
    assert reply.failed and reply.title is None and reply.calls == 0 and reply.tokens["total_tokens"] == 0
