"""Search quality on a fixed corpus (tests/knowledge/corpus.py): recall@5 of the lexical search on
this database, and of the hybrid search with the fake provider's embeddings. The floors are below
the measured figures (docs/PERFORMANCE.md) by one or two questions, so a ranking change that loses
answers fails here."""

from __future__ import annotations

import pytest

from chat.runs.knowledge import accept, search, settle_processing
from tests.doubles.fake_openai import FakeProvider

from .corpus import DOCUMENTS, QUESTIONS

pytestmark = pytest.mark.django_db(transaction=True)


async def load_corpus(user) -> None:
    for name, text in DOCUMENTS.items():
        declared = "text/html" if name.endswith(".html") else "text/markdown" if name.endswith(".md") else ""
        await accept(user_pk=user.pk, username=user.username, name=name, content=text.encode(),
                     declared_type=declared)
    await settle_processing(60)


async def recall(user, k: int) -> tuple[float, float, list[str]]:
    """Recall@k over all questions and over the by-meaning ones, and the questions missed. With
    twelve documents recall@5 is a low bar; recall@1 (the answer's document first) says more."""
    missed = []
    for question in QUESTIONS:
        hits = await search(user.pk, question.text, limit=k)
        if question.document not in [h.document for h in hits]:
            missed.append(question.text)
    meaning = [q for q in QUESTIONS if q.by_meaning]
    found_meaning = sum(q.text not in missed for q in meaning)
    return 1 - len(missed) / len(QUESTIONS), found_meaning / len(meaning), missed


async def report(user, kind: str) -> dict[int, tuple[float, float, list[str]]]:
    figures = {k: await recall(user, k) for k in (5, 1)}
    for k, (overall, meaning, missed) in figures.items():
        print(f"\n{kind} recall@{k}: {overall:.2f} (by meaning: {meaning:.2f}); missed: {missed}")
    return figures


async def test_lexical_recall_at_5(alice, capsys):
    await load_corpus(alice)
    with capsys.disabled():
        figures = await report(alice, "lexical")
    assert figures[5][0] >= 0.90 and figures[1][0] >= 0.75


async def test_hybrid_recall_at_5_with_the_fake_embeddings(alice, settings, capsys):
    async with FakeProvider(model="fake-embed") as provider:
        settings.CIRKELLINE_EMBEDDING_MODEL = "openai-like:fake-embed"
        settings.CIRKELLINE_EMBEDDING_BASE_URL = provider.base_url
        await load_corpus(alice)
        with capsys.disabled():
            figures = await report(alice, "hybrid")
    assert figures[5][0] >= 0.95 and figures[5][1] >= 0.8 and figures[1][0] >= 0.85
