"""Chunk embeddings, stored portably, scored with numpy, and fused with the lexical ranking.

Vectors are kept in the chunk row as little-endian float32 bytes (`KnowledgeChunk.embedding`):
any database stores them, SQLite and PostgreSQL alike. The pgvector extension would index them
in the database, but it is not available here; so a vector ranking scores a bounded set of
candidates in numpy: the lexical search's best CANDIDATES chunks, or every chunk the user may read
when they are at most FULL_SCAN_MAX (so a question sharing no word with its answer still finds it
in a small library). Beyond that a question whose answer shares no word with it is found only if
the lexical ranking lets it in; docs/ARCHITECTURE.md says when a pgvector backend becomes
necessary. Such a backend implements `VectorIndex` (one method) and nothing else changes.

The rankings are fused by reciprocal rank fusion (RRF_K = 60, the constant of the paper that
introduced it: Cormack, Clarke and Buettcher 2009): each chunk scores the sum of 1 / (60 + rank)
over the rankings it appears in, so neither BM25's nor cosine's scale matters.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .models import KnowledgeChunk

CANDIDATES = 200
FULL_SCAN_MAX = 5000
RRF_K = 60


def to_bytes(vector: list[float]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype="<f4")


class VectorIndex(Protocol):
    def rank(self, user_pk: int, query: list[float], *, model: str, candidates: list[int], limit: int) -> list[int]:
        """Chunk ids the user may read embedded by `model`, nearest to `query` first (sync;
        `candidates`: the lexical ranking's ids, which a backend with an index of its own may ignore)."""


class PortableVectors:
    """Vectors in the chunk rows, cosine similarity in numpy over a bounded candidate set."""

    def rank(self, user_pk: int, query: list[float], *, model: str, candidates: list[int], limit: int) -> list[int]:
        visible = KnowledgeChunk.objects.visible(user_pk).filter(embedding__isnull=False,
                                                                 document__embedding_model=model)
        if visible.count() > FULL_SCAN_MAX:
            visible = visible.filter(id__in=candidates[:CANDIDATES])
        rows = list(visible.values_list("id", "embedding")[:FULL_SCAN_MAX])
        q = np.asarray(query, dtype="<f4")
        rows = [(i, v) for i, v in ((i, from_bytes(b)) for i, b in rows) if v.shape == q.shape]
        if not rows or not np.any(q):
            return []
        matrix = np.stack([v for _, v in rows])
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(q)
        scores = matrix @ q / np.where(norms == 0, 1, norms)
        order = np.argsort(-scores, kind="stable")[:limit]
        return [rows[i][0] for i in order if scores[i] > 0]  # nothing in common is no match


def fuse(*rankings: list[int], limit: int) -> list[int]:
    """Reciprocal rank fusion of rankings of chunk ids: the best `limit` ids, best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores, key=lambda i: (-scores[i], i))[:limit]
