"""Sessions named by the model after their first answer: the title, its usage row, budgets, the
user's own name winning, isolation, failures (chat.runs.naming)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, OperationalError

from chat.agents.scripted import Turn, provider_error
from chat.agents.titles import NAMING_LABEL
from chat.models import ChatSession, NamedBy
from chat.runs import RunRequest, naming, start_run
from metrics.models import Budget, ModelCall, PriceRule, RunUsage, UsageKind
from tests.conftest import adb

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = "Please research the history of Copenhagen in detail"
# The demo's (and the scripted model's) title of MESSAGE: its words without the polite opening
# and the dangling "in" (chat.agents.titles.demo_title).
TITLE = "Research the history of Copenhagen"


@pytest.fixture(autouse=True)
def naming_on(settings):
    settings.CIRKELLINE_AUTO_NAME_SESSIONS = True


async def run_to_end(user, message=MESSAGE, **kwargs):
    handle = await start_run(RunRequest(user_id=user.pk, username=user.username, message=message, **kwargs))
    async for _ in handle.events():
        pass
    result = await handle.wait()
    await naming.settle_namings(30.0)
    return handle, result


def session(session_id: str) -> ChatSession:
    return ChatSession.objects.get(session_id=session_id)


def usage(session_id: str, kind: str) -> list[RunUsage]:
    return list(RunUsage.objects.filter(session_id=session_id, kind=kind).order_by("started_at"))


def naming_calls(recorder):
    return [c for c in recorder.calls if c.model_label == NAMING_LABEL]


async def test_the_first_answer_names_the_session_and_the_call_is_billed_apart(alice, recorder):
    handle, result = await run_to_end(alice)
    assert result.status == "completed"

    row = await adb(session, handle.session_id)
    assert (row.session_name, row.named_by) == (TITLE, NamedBy.MODEL)
    [call] = naming_calls(recorder)
    assert MESSAGE in call.user_text and call.tool_names == []  # the first message; no tools
    assert result.output.content[:100] in call.user_text  # and its answer
    [chat] = await adb(usage, handle.session_id, UsageKind.CHAT)
    [named] = await adb(usage, handle.session_id, UsageKind.NAMING)
    assert chat.run_id == handle.run_id and named.run_id != handle.run_id
    assert (named.status, named.team_id, named.user_id, named.username) == ("completed", "cirkelline", alice.pk,
                                                                           "alice")
    # exactly what the provider reported for the one call
    assert (named.input_tokens, named.output_tokens, named.total_tokens) == (
        call.usage.input_tokens, call.usage.output_tokens, call.usage.total_tokens)
    assert named.model_calls == 1 and named.model == "scripted" and named.streamed is False
    [ledger] = await adb(lambda: list(ModelCall.objects.filter(run_id=named.run_id)))
    assert (ledger.agent, ledger.is_leader, ledger.calls, ledger.total_tokens) == ("naming", False, 1,
                                                                                  named.total_tokens)
    # the chat run's own row is untouched by it
    assert chat.model_calls == len(recorder.for_run(handle.run_id)) == 3


async def test_a_priced_naming_call_costs_what_its_tokens_cost(alice, recorder):
    await adb(PriceRule.objects.create, provider="scripted", model_pattern="scripted",
              input_per_million=Decimal("2"), output_per_million=Decimal("8"))
    handle, _ = await run_to_end(alice)
    [named] = await adb(usage, handle.session_id, UsageKind.NAMING)
    expected = (Decimal(named.input_tokens) * 2 + Decimal(named.output_tokens) * 8) / 1_000_000
    assert named.pricing == "priced" and named.cost == expected.quantize(Decimal("0.00000001")) > 0


async def test_later_answers_never_name_the_session_again(alice, recorder):
    first, _ = await run_to_end(alice)
    await run_to_end(alice, "Now tell me about Aarhus", session_id=first.session_id)
    assert len(naming_calls(recorder)) == 1
    assert len(await adb(usage, first.session_id, UsageKind.NAMING)) == 1
    assert (await adb(session, first.session_id)).session_name == TITLE


async def test_a_session_whose_first_run_failed_is_named_after_its_first_answer(alice, recorder, failures,
                                                                                settings):
    settings.CIRKELLINE_MAX_RETRIES = 0
    failures.push(provider_error(500), label="leader")
    failed, result = await run_to_end(alice)
    assert result.status == "error" and naming_calls(recorder) == []
    await run_to_end(alice, MESSAGE, session_id=failed.session_id)
    assert (await adb(session, failed.session_id)).session_name == TITLE


async def test_the_users_own_name_is_never_replaced(alice, api, recorder):
    handle, _ = await run_to_end(alice)  # named by the model
    from tests.conftest import bearer

    response = await api.post(f"/sessions/{handle.session_id}/rename", json={"session_name": "Trip planning"},
                              headers=bearer(alice))
    assert response.status_code == 200
    row = await adb(session, handle.session_id)
    assert (row.session_name, row.named_by) == ("Trip planning", NamedBy.USER)
    # asked again (as if this were its first answer), naming does not even call the model
    assert await naming.name_session(user_id=alice.pk, username="alice", session_id=handle.session_id,
                                     team_id="cirkelline", first_message=MESSAGE, answer="") is None
    assert len(naming_calls(recorder)) == 1
    assert (await adb(session, handle.session_id)).session_name == "Trip planning"


async def test_a_rename_racing_the_naming_call_wins(alice, monkeypatch, settings):
    settings.CIRKELLINE_AUTO_NAME_SESSIONS = False
    handle, _ = await run_to_end(alice)
    original = naming.ask_for_title

    async def renamed_meanwhile(**kwargs):
        reply = await original(**kwargs)
        # the user renames the chat while the model's title is on its way back
        await adb(ChatSession.objects.rename, alice.pk, handle.session_id, "My own name")
        return reply

    monkeypatch.setattr(naming, "ask_for_title", renamed_meanwhile)
    assert await naming.name_session(user_id=alice.pk, username="alice", session_id=handle.session_id,
                                     team_id="cirkelline", first_message=MESSAGE, answer="") is None
    row = await adb(session, handle.session_id)
    assert (row.session_name, row.named_by) == ("My own name", NamedBy.USER)
    [named] = await adb(usage, handle.session_id, UsageKind.NAMING)  # the call was made: it is billed
    assert named.status == "completed" and named.total_tokens > 0


async def test_a_name_given_while_a_run_is_live_outlasts_that_run(alice, use_latency):
    first, _ = await run_to_end(alice)
    use_latency(0.3)
    live = await start_run(RunRequest(user_id=alice.pk, message="And Aarhus?", session_id=first.session_id))
    await adb(ChatSession.objects.rename, alice.pk, first.session_id, "Danish cities")
    async for _ in live.events():
        pass
    assert (await live.wait()).status == "completed"
    # the run's final write carried the name its claim had loaded; the stored one stays
    assert (await adb(session, first.session_id)).session_name == "Danish cities"


async def test_over_budget_no_naming_call_is_made(alice, recorder):
    await adb(PriceRule.objects.create, provider="scripted", model_pattern="scripted",
              input_per_million=Decimal("100000"), output_per_million=Decimal("100000"))
    await adb(Budget.objects.create, user=alice, monthly_limit=Decimal("1.00"))
    handle, result = await run_to_end(alice)  # admitted under budget; its cost uses the budget up
    assert result.status == "completed" and handle.cost > Decimal("1.00")
    assert naming_calls(recorder) == []
    assert await adb(usage, handle.session_id, UsageKind.NAMING) == []
    row = await adb(session, handle.session_id)
    assert (row.session_name, row.named_by) == (MESSAGE, NamedBy.MESSAGE)


async def test_with_naming_off_the_first_message_names_the_session(alice, recorder, settings):
    settings.CIRKELLINE_AUTO_NAME_SESSIONS = False
    handle, _ = await run_to_end(alice)
    assert naming_calls(recorder) == [] and await adb(usage, handle.session_id, UsageKind.NAMING) == []
    assert (await adb(session, handle.session_id)).session_name == MESSAGE


async def test_a_reply_that_is_no_title_keeps_the_first_message_name_and_is_billed(alice, use_script, recorder):
    from chat.agents.demo import demo_script

    use_script(lambda call: Turn(text='"Hello!"') if call.model_label == NAMING_LABEL else demo_script(call))
    handle, _ = await run_to_end(alice)
    assert len(naming_calls(recorder)) == 1
    row = await adb(session, handle.session_id)
    assert (row.session_name, row.named_by) == (MESSAGE, NamedBy.MESSAGE)
    [named] = await adb(usage, handle.session_id, UsageKind.NAMING)
    assert named.status == "completed" and named.total_tokens > 0


async def test_a_failed_naming_call_is_recorded_and_the_name_stays(alice, failures, settings):
    settings.CIRKELLINE_MAX_RETRIES = 0
    failures.push(provider_error(429), label=NAMING_LABEL)
    handle, result = await run_to_end(alice)
    assert result.status == "completed"
    [named] = await adb(usage, handle.session_id, UsageKind.NAMING)
    assert (named.status, named.error_type) == ("rate_limited", "rate_limited")
    assert (await adb(session, handle.session_id)).session_name == MESSAGE


async def test_a_naming_write_during_an_outage_is_retried_and_billed_once(alice, recorder, settings, monkeypatch):
    """Guards against a naming call lost to a short database outage: the call was made, so its
    usage row (and the title) is written once the database answers again, exactly once."""
    settings.CIRKELLINE_FLUSH_RETRY_INTERVAL = 0.01
    settings.CIRKELLINE_FLUSH_RETRY_WINDOW = 30.0
    real_store, attempts = naming._store, []

    def store_after_an_outage(*args):
        attempts.append(args)
        if len(attempts) <= 2:
            raise OperationalError("connection refused")
        return real_store(*args)

    monkeypatch.setattr(naming, "_store", store_after_an_outage)
    handle, _ = await run_to_end(alice)
    assert len(attempts) == 3
    [named] = await adb(usage, handle.session_id, UsageKind.NAMING)
    assert named.status == "completed" and named.total_tokens > 0
    assert (await adb(session, handle.session_id)).session_name == TITLE


async def test_a_naming_write_the_database_refuses_is_not_retried(alice, recorder, settings, monkeypatch):
    settings.CIRKELLINE_FLUSH_RETRY_INTERVAL = 0.01
    attempts = []

    def refused(*args):
        attempts.append(args)
        raise IntegrityError("refused")

    monkeypatch.setattr(naming, "_store", refused)
    handle, _ = await run_to_end(alice)
    assert len(attempts) == 1
    assert await adb(usage, handle.session_id, UsageKind.NAMING) == []
    assert (await adb(session, handle.session_id)).session_name == MESSAGE


async def test_a_naming_call_past_its_deadline_is_billed_for_its_prompt(alice, settings, use_script):
    from chat.agents.demo import demo_script

    settings.CIRKELLINE_NAMING_TIMEOUT = 0.2
    settings.CIRKELLINE_AUTO_NAME_SESSIONS = False
    handle, _ = await run_to_end(alice)
    # only the naming call is slow
    settings.CIRKELLINE_SCRIPTED_LATENCY = 5.0
    use_script(demo_script)
    assert await naming.name_session(user_id=alice.pk, username="alice", session_id=handle.session_id,
                                     team_id="cirkelline", first_message=MESSAGE, answer="An answer") is None
    [named] = await adb(usage, handle.session_id, UsageKind.NAMING)
    assert (named.status, named.error_type) == ("timed_out", "timeout")
    assert named.input_tokens > 0 and named.estimated_tokens == named.total_tokens  # counted locally
    assert (await adb(session, handle.session_id)).session_name == MESSAGE


async def test_naming_never_touches_another_users_session(alice, bob, recorder, settings):
    settings.CIRKELLINE_AUTO_NAME_SESSIONS = False
    bobs, _ = await run_to_end(bob, "Please explain sourdough baking step by step")
    assert await naming.name_session(user_id=alice.pk, username="alice", session_id=bobs.session_id,
                                     team_id="cirkelline", first_message=MESSAGE, answer="") is None
    assert naming_calls(recorder) == []
    assert not await adb(ChatSession.objects.name_by_model, alice.pk, bobs.session_id, "Alice's title")
    row = await adb(session, bobs.session_id)
    assert (row.session_name, row.named_by) == ("Please explain sourdough baking step by step", NamedBy.MESSAGE)
    assert await adb(lambda: RunUsage.objects.filter(kind=UsageKind.NAMING).count()) == 0


async def test_through_a_real_openai_compatible_client_the_title_and_tokens_are_the_providers(alice, settings):
    """The naming call through agno's OpenAILike client and the retry layer, against the loopback fake
    provider: one non-streamed request with the naming instructions, billed with the usage it reported,
    and a 429 retried like a run's call."""
    from chat.runs import teams
    from tests.doubles.fake_openai import Behaviour, FakeProvider, estimate_tokens, prompt_tokens

    settings.CIRKELLINE_RETRY_DELAY = 0.01
    with FakeProvider(answer_words=12, tokens_per_second=500, keep_alive=False) as provider:
        settings.CIRKELLINE_MODEL = "openai-like:fake"
        settings.CIRKELLINE_MODEL_BASE_URL = provider.base_url
        teams.prototype.cache_clear()
        settings.CIRKELLINE_AUTO_NAME_SESSIONS = False
        handle, _ = await run_to_end(alice)
        chat_requests = len(provider.requests)
        provider.enqueue(Behaviour.rate_limited(retry_after="0"))
        provider.enqueue(Behaviour(text='Title: "Copenhagen through the centuries."'))
        title = await naming.name_session(user_id=alice.pk, username="alice", session_id=handle.session_id,
                                          team_id="cirkelline", first_message=MESSAGE, answer="Founded around 1160")
        assert title == "Copenhagen through the centuries"
        refused, answered = provider.requests[chat_requests:]
        assert not answered.stream and answered.tool_names == []
        assert "You give chats their titles" in answered.messages[0]["content"]
        assert MESSAGE in answered.messages[-1]["content"] and "Founded around 1160" in answered.messages[-1]["content"]
        [named] = await adb(usage, handle.session_id, UsageKind.NAMING)
        assert named.input_tokens == prompt_tokens(answered.messages)
        assert named.output_tokens == estimate_tokens(len('Title: "Copenhagen through the centuries."'))
        assert (named.model, named.model_calls, named.retries, named.status) == ("openai-like:fake", 1, 1,
                                                                                "completed")
        assert (await adb(session, handle.session_id)).session_name == title
        assert await provider.wait_idle(10.0)
