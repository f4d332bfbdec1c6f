"""Benchmark: document search latency at 10,000 chunks, on SQLite or PostgreSQL (not a test).

    .venv/bin/python -m bench.knowledge_search [--chunks 10000] [--queries 300] [--database-url URL]

Builds a fresh database (SQLite in a temporary directory by default; `--database-url` for
PostgreSQL: an empty database of its own, it is migrated) with `--chunks` chunks of about 150
words each (synthetic text: a Zipf-distributed vocabulary of 6,000 words, real ones first, then made-up
ones; question words drawn from ranks 40-3,000), in
documents of 100 chunks, owned in two layouts:

- `one owner`: one user owns every chunk (the worst case for the ranking: all of them visible);
- `ten owners`: ten users own a tenth each, and the searching user sees their own tenth plus one
  shared document.

Each chunk gets a random 384-dimension float32 vector (the vector side's cost does not depend on
the values). Then `--queries` questions of 3-6 words are searched, timed per call in this process
(the database's own time included; no HTTP): the lexical ranking (`chat.knowledge.search.lexical`,
best 5, and best 200: the hybrid search's candidate set), the vector ranking over those candidates
or over every visible chunk up to FULL_SCAN_MAX (`PortableVectors.rank`), and the two fused (the
whole hybrid search minus the embedding call, which is the provider's latency). Prints p50 / p95
/ max in milliseconds; docs/PERFORMANCE.md has the figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from .common import setup_django_bench

WORDS = ("the of and to in is for that on with as are by this be from or an at it not which have your can all "
         "will more has one about also new other time their may these use when they information such work "
         "report contract notice period salary holiday policy budget meeting project invoice payment customer "
         "service support product order delivery account manager team office building energy water heating "
         "garden kitchen school student teacher course exam library doctor patient medicine health insurance "
         "travel flight hotel ticket train station museum history city river bridge island ferry harbour "
         "weather rain snow summer winter spring autumn morning evening weekend monday friday january march "
         "computer software server database network security password backup update release version license "
         "research study result method data analysis chart figure table section chapter page appendix").split()


def _vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    """WORDS, then made-up words from syllables: a vocabulary the size of a real collection's, so a
    question's words occur in as few chunks as real ones do (with WORDS alone, in most of them)."""
    syllables = ["ka", "lo", "mi", "ne", "ta", "ri", "so", "ve", "du", "pa", "gen", "stor", "hav", "ber", "lin"]
    made = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size * 2)}
    return list(WORDS) + sorted(made - set(WORDS))[:size - len(WORDS)]


def _setup(database_url: str) -> None:
    setup_django_bench("cirkelline-knowledge-bench-", database_url)


def _text(rng: random.Random, vocabulary: list[str], weights: list[float], words: int) -> str:
    return " ".join(rng.choices(vocabulary, cum_weights=weights, k=words)) + "."


def _fill(chunks: int, owners: list, rng: random.Random, vocabulary: list[str]) -> None:
    import numpy as np

    from chat.knowledge.models import DocumentStatus, KnowledgeChunk, KnowledgeDocument

    per_doc = 100
    weights, total = [], 0.0
    for rank in range(len(vocabulary)):  # Zipf: the word of rank r is used in proportion to 1 / r
        total += 1 / (rank + 1)
        weights.append(total)
    for number in range(chunks // per_doc):
        owner = owners[number % len(owners)]
        doc = KnowledgeDocument.objects.create(owner=owner, name=f"doc-{number}.txt", file_type="text/plain",
                                               status=DocumentStatus.COMPLETED, chunk_count=per_doc,
                                               embedding_model="bench:vectors")
        KnowledgeChunk.objects.bulk_create(
            [KnowledgeChunk(document=doc, position=i, text=_text(rng, vocabulary, weights, 150),
                            embedding=np.asarray(rng.random() * np.ones(384) + np.arange(384) * rng.random(),
                                                 dtype="<f4").tobytes()) for i in range(per_doc)],
            batch_size=500)


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    return f"p50 {statistics.median(samples) * 1000:7.2f}  p95 {p95 * 1000:7.2f}  max {samples[-1] * 1000:7.2f}"


def _measure(user_pk: int, queries: list[str], rng: random.Random) -> dict[str, list[float]]:
    import numpy as np

    from chat.knowledge.search import lexical
    from chat.knowledge.vectors import CANDIDATES, PortableVectors, fuse

    vectors = PortableVectors()
    times: dict[str, list[float]] = {"lexical, best 5": [], "lexical, best 200": [], "vector rank": [],
                                     "hybrid (no embedding call)": []}
    for query in queries:
        started = time.perf_counter()
        lexical(user_pk, query, limit=5)
        times["lexical, best 5"].append(time.perf_counter() - started)
        started = time.perf_counter()
        hits = lexical(user_pk, query, limit=CANDIDATES)
        middle = time.perf_counter()
        q = np.asarray([rng.random() for _ in range(384)], dtype="<f4").tolist()
        ranked = vectors.rank(user_pk, q, model="bench:vectors", candidates=[h.chunk_id for h in hits],
                              limit=CANDIDATES)
        fuse([h.chunk_id for h in hits], ranked, limit=5)
        ended = time.perf_counter()
        times["lexical, best 200"].append(middle - started)
        times["vector rank"].append(ended - middle)
        times["hybrid (no embedding call)"].append(ended - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    _setup(args.database_url)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from chat.knowledge.models import KnowledgeChunk, KnowledgeDocument

    rng = random.Random(20)
    vocabulary = _vocabulary(rng)
    # Question words from ranks 40-3000: no stop words, and words that occur in some chunks.
    queries = [" ".join(rng.sample(vocabulary[40:3000], rng.randint(3, 6))) for _ in range(args.queries)]
    users = [get_user_model().objects.create_user(f"bench-{i}") for i in range(11)]
    print(f"database: {connection.vendor}; {args.chunks} chunks; {args.queries} queries")
    for layout, owners, searcher in (("one owner", users[:1], users[0]), ("ten owners", users[1:], users[1])):
        KnowledgeDocument.objects.all().delete()
        started = time.perf_counter()
        _fill(args.chunks, owners, rng, vocabulary)
        if layout == "ten owners":
            first = KnowledgeDocument.objects.filter(owner=users[2]).order_by("id").first()
            KnowledgeDocument.objects.filter(pk=first.pk).update(shared=True)  # another user's, shared
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE knowledge_knowledgechunk; ANALYZE knowledge_knowledgedocument")
        visible = KnowledgeChunk.objects.visible(searcher.pk).count()
        print(f"\n{layout}: filled in {time.perf_counter() - started:.1f} s; the searcher sees {visible} chunks")
        _measure(searcher.pk, queries[:20], rng)  # warm caches and the connection
        for name, samples in _measure(searcher.pk, queries, rng).items():
            print(f"  {name:28s} {_ms(samples)} ms")


if __name__ == "__main__":
    main()
