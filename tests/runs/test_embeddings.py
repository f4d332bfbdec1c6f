"""Embeddings for documents, from the test suite's fake provider (its /v1/embeddings): chunks
embedded at upload and questions at search, the vector ranking fused with the lexical one, and
every embedding call billed (a usage row of kind `embedding` outside runs, the run's ledger inside
one, budgets, /usage)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from chat.agents.knowledge import SEARCH_TOOL
from chat.agents.scripted import ToolCall, Turn
from chat.knowledge.models import KnowledgeChunk, KnowledgeDocument
from chat.knowledge.vectors import from_bytes
from chat.runs import RunRequest, start_run
from chat.runs.embedding import EMBEDDING_AGENT, OVER_BUDGET
from chat.runs.knowledge import accept, search, settle_processing
from metrics.models import ModelCall, PriceRule, RunUsage, UsageKind
from tests.api.test_openapi import assert_conforms
from tests.budgets import budget, spent
from tests.conftest import adb, bearer
from tests.doubles.fake_openai import FakeProvider
from tests.doubles.fake_openai.wire import EMBEDDING_DIMENSIONS

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "fake-embed"
PRICE = Decimal("0.02")  # USD per million input tokens


@pytest.fixture
async def provider(settings):
    async with FakeProvider(model=MODEL) as fake:
        settings.CIRKELLINE_EMBEDDING_MODEL = f"openai-like:{MODEL}"
        settings.CIRKELLINE_EMBEDDING_BASE_URL = fake.base_url
        settings.CIRKELLINE_RETRY_DELAY = 0.01
        yield fake


async def priced() -> None:
    await adb(PriceRule.objects.create, provider="openai-like", model_pattern=MODEL, input_per_million=PRICE,
              output_per_million=Decimal(0), effective_from=timezone.now() - timedelta(days=1))


async def upload(user, name, text):
    doc = await accept(user_pk=user.pk, username=user.username, name=name, content=text.encode(),
                       declared_type="text/plain")
    await settle_processing(30)
    return await adb(KnowledgeDocument.objects.get, pk=doc.pk)


def embedding_rows(user):
    return list(RunUsage.objects.filter(user=user, kind=UsageKind.EMBEDDING).order_by("id"))


def ledger(run_id):
    return {c.agent: c for c in ModelCall.objects.filter(run_id=run_id)}


async def test_chunks_are_embedded_at_upload_and_the_calls_billed(provider, alice, api):
    await priced()
    doc = await upload(alice, "cars.txt", "The automobile is parked in the blue garage.")
    assert doc.status == "completed" and doc.embedding_model == f"openai-like:{MODEL}"
    [blob] = await adb(lambda: list(KnowledgeChunk.objects.filter(document=doc).values_list("embedding", flat=True)))
    vector = from_bytes(blob)
    assert vector.dtype == np.float32 and vector.shape == (EMBEDDING_DIMENSIONS,)
    assert provider.embedding_requests == [{"model": MODEL, "input": ["The automobile is parked in the blue "
                                                                      "garage."]}]

    [row] = await adb(embedding_rows, alice)
    assert (row.status, row.model_calls, row.input_tokens, row.total_tokens) == ("completed", 1, 8, 8)
    call = (await adb(ledger, row.run_id))[EMBEDDING_AGENT]
    assert (call.model, call.provider, call.calls, call.input_tokens) == (MODEL, "openai-like", 1, 8)
    assert row.cost == call.cost == Decimal(8) * PRICE / Decimal(1_000_000)
    usage = (await api.get("/usage", headers=bearer(alice))).json()
    assert_conforms("/usage", "get", 200, usage)
    kinds = {k["kind"]: k for k in usage["by_kind"]}
    assert kinds["embedding"]["total_tokens"] == 8


async def test_a_synonym_finds_the_chunk_by_its_vector_and_the_question_is_billed(provider, alice, bob, api):
    """`car` shares no word with the chunk: only the vector ranking (fused with the lexical one) finds it."""
    doc = await upload(alice, "cars.txt", "The automobile is parked in the blue garage.")
    await upload(alice, "fruit.txt", "Apples and pears ripen in September.")
    response = await api.get("/knowledge/search", params={"query": "car"}, headers=bearer(alice))
    found = response.json()["data"]
    assert found[0]["content_id"] == doc.content_id
    assert provider.embedding_requests[-1]["input"] == ["car"]
    rows = await adb(embedding_rows, alice)
    assert len(rows) == 3 and rows[-1].total_tokens == 1  # two documents, then the question

    # bob's question embeds too, and still reaches none of alice's chunks
    assert (await api.get("/knowledge/search", params={"query": "car"}, headers=bearer(bob))).json()["data"] == []


async def test_lexically_matching_chunks_rank_first_when_both_agree(provider, alice):
    wanted = await upload(alice, "salary.txt", "Your salary is paid on the 25th of every month.")
    await upload(alice, "other.txt", "The canteen opens at noon on weekdays.")
    hits = await search(alice.pk, "when is my salary paid", limit=5)
    assert hits[0].content_id == wanted.content_id


async def test_a_question_inside_a_run_is_billed_on_the_runs_ledger(provider, alice, use_script):
    await priced()
    await upload(alice, "cars.txt", "The automobile is parked in the blue garage.")

    def script(call):
        if not call.is_leader:
            return Turn(text="member")
        if SEARCH_TOOL in call.tool_result_names:
            return Turn(text="Found: " + call.tool_results[-1])
        return Turn(tool_calls=[ToolCall(name=SEARCH_TOOL, arguments={"query": "where is the car"})])

    use_script(script)
    before = len(await adb(embedding_rows, alice))
    handle = await start_run(RunRequest(user_id=alice.pk, username=alice.username, message="Where is my car?"))
    events = [e async for e in handle.events()]
    assert (await handle.wait()).status == "completed"
    [completed] = [e for e in events if e.event == "TeamToolCallCompleted"]
    assert json.loads(completed.tool.result)["results"][0]["document"] == "cars.txt"

    row = await adb(RunUsage.objects.get, run_id=handle.run_id)
    calls = await adb(ledger, handle.run_id)
    assert calls[EMBEDDING_AGENT].input_tokens == 4 and calls[EMBEDDING_AGENT].calls == 1
    assert calls[EMBEDDING_AGENT].cost == Decimal(4) * PRICE / Decimal(1_000_000)
    assert row.cost == sum(c.cost for c in calls.values() if c.cost is not None)
    assert len(await adb(embedding_rows, alice)) == before  # no row of its own: the run's


async def test_a_failing_provider_leaves_the_document_searchable_by_words(provider, alice, settings):
    settings.CIRKELLINE_MAX_RETRIES = 1
    provider.embedding_failures.extend([500, 500])
    doc = await upload(alice, "notes.txt", "Lighthouse keepers log the weather.")
    assert doc.status == "completed" and doc.embedding_model == "" and "Not embedded" in doc.status_message
    [row] = await adb(embedding_rows, alice)
    assert (row.status, row.error_type, row.model_calls, row.retries) == ("error", "provider_error", 2, 1)
    hits = await search(alice.pk, "lighthouse weather", limit=5)
    assert [h.content_id for h in hits] == [doc.content_id]


async def test_over_budget_nothing_is_embedded_or_called(provider, alice):
    await adb(budget, alice, "1.00")
    await adb(spent, alice, "1.00")
    doc = await upload(alice, "notes.txt", "Lighthouse keepers log the weather.")
    assert doc.status == "completed" and doc.status_message == OVER_BUDGET
    hits = await search(alice.pk, "lighthouse", limit=5)
    assert [h.content_id for h in hits] == [doc.content_id]
    assert provider.embedding_requests == [] and await adb(embedding_rows, alice) == []
