"""Lexical search over the chunks a user may read, in the database's own full-text engine.

- SQLite (the default, `make run` offline): an FTS5 table over the chunks (external content, kept
  by triggers; the Porter stemmer) ranked by BM25.
- PostgreSQL: a generated `tsvector` column (English stemming) with a GIN index, ranked by
  `ts_rank_cd`.

Both are created by migration 0002, each on its own vendor. The user's filter (their own
documents, or shared ones, completed) is in the WHERE clause of the one query that ranks, never
applied to a result afterwards: a limit can never be filled by chunks the user may not see, and
nothing another user owns leaves the database. A question is reduced to its words (at most
QUERY_WORDS, each quoted), any of which may match, so no input can be read as the engine's
query syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection

from .models import DocumentStatus

QUERY_WORDS = 32
WORD_MAX = 64
_WORD_RE = re.compile(r"\w+", re.UNICODE)


@dataclass
class Hit:
    """One chunk found, with its document: what the API returns and the model cites."""

    chunk_id: int
    position: int
    page: int | None
    text: str
    content_id: str
    document: str
    shared: bool
    score: float


def query_words(query: str) -> list[str]:
    words: list[str] = []
    for word in _WORD_RE.findall(query.lower()):
        if len(word) <= WORD_MAX and word not in words:
            words.append(word)
    return words[:QUERY_WORDS]


_SELECT = ("SELECT c.id, c.position, c.page, c.text, d.content_id, d.name, d.shared, {score} AS score "
           "FROM {source} JOIN knowledge_knowledgedocument d ON d.id = c.document_id "
           "WHERE {match} AND (d.owner_id = %s OR d.shared) AND d.status = %s ")


def _sqlite(words: list[str], user_pk: int, limit: int) -> list[tuple]:
    match = " OR ".join(f'"{w}"' for w in words)  # each word a quoted string: never FTS5 syntax
    sql = _SELECT.format(
        score="-bm25(knowledge_chunk_fts)",
        source="knowledge_chunk_fts JOIN knowledge_knowledgechunk c ON c.id = knowledge_chunk_fts.rowid",
        match="knowledge_chunk_fts MATCH %s") + "ORDER BY bm25(knowledge_chunk_fts), c.id LIMIT %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [match, user_pk, DocumentStatus.COMPLETED, limit])
        return cursor.fetchall()


def _postgresql(words: list[str], user_pk: int, limit: int) -> list[tuple]:
    # websearch_to_tsquery never raises on any input; " or " between the words: any may match.
    sql = _SELECT.format(
        score="ts_rank_cd(c.search, q)",
        source="knowledge_knowledgechunk c CROSS JOIN websearch_to_tsquery('english', %s) q",
        match="c.search @@ q") + "ORDER BY score DESC, c.id LIMIT %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [" or ".join(words), user_pk, DocumentStatus.COMPLETED, limit])
        return cursor.fetchall()


def lexical(user_pk: int, query: str, *, limit: int) -> list[Hit]:
    """The best `limit` chunks for `query` among those the user may read, best first. Sync."""
    words = query_words(query)
    if not words or limit <= 0:
        return []
    rows = (_postgresql if connection.vendor == "postgresql" else _sqlite)(words, user_pk, limit)
    return [Hit(chunk_id=r[0], position=r[1], page=r[2], text=r[3], content_id=r[4], document=r[5],
                shared=bool(r[6]), score=float(r[7])) for r in rows]


def hits_by_ids(user_pk: int, chunk_ids: list[int]) -> dict[int, Hit]:
    """Chunks by id, those the user may read only (the vector ranking's results). Sync."""
    from .models import KnowledgeChunk

    rows = KnowledgeChunk.objects.visible(user_pk).filter(id__in=chunk_ids).values_list(
        "id", "position", "page", "text", "document__content_id", "document__name", "document__shared")
    return {r[0]: Hit(chunk_id=r[0], position=r[1], page=r[2], text=r[3], content_id=r[4], document=r[5],
                      shared=bool(r[6]), score=0.0) for r in rows}
