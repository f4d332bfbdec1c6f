"""Embedding calls for documents: configured by CIRKELLINE_EMBEDDING_MODEL (empty: none)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass
class DocumentVectors:
    vectors: list[list[float]] | None
    model: str = ""
    note: str = ""


def configured() -> bool:
    return bool(settings.CIRKELLINE_EMBEDDING_MODEL)


async def embed_document(texts: list[str], *, user_pk: int, username: str, document_id: str) -> DocumentVectors:
    return DocumentVectors(None, note="Embeddings are not available yet.")


async def embed_query(query: str, *, user_pk: int, username: str) -> list[float] | None:
    return None
