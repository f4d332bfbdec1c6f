"""The user's documents as the run service handles them: an upload accepted and processed in the
background, and the search every transport and the team's tool use.

Upload (`accept`): the bytes are checked (size, a type Cirkelline reads, told by the bytes:
chat.knowledge.extract.detect_type) before anything is stored; then the document's row is
written (`processing`) and a task of this process reads it: text extracted in a worker thread
(CPU-bound, off the loop), cut into chunks, embedded when an embedding model is configured
(chat.runs.embedding: billed, within the user's budget), and stored with the status `completed`
in one transaction, or `failed` with a sentence saying why. A process that dies mid-way leaves
the row `processing`; reads mark it failed after CIRKELLINE_KNOWLEDGE_PROCESS_TIMEOUT.

Search (`search`): the database's lexical ranking of the chunks the user may read (the filter
inside the query: chat.knowledge.search); with an embedding model, the question is embedded too,
the vector ranking scored over a bounded candidate set (chat.knowledge.vectors) and the two fused
by reciprocal rank fusion. An embedding failure falls back to the lexical ranking alone.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from chat.errors import BadRequest
from chat.knowledge import extract as extraction
from chat.knowledge.chunking import chunk_pages
from chat.knowledge.models import KnowledgeDocument
from chat.knowledge.search import Hit, hits_by_ids, lexical
from chat.knowledge.vectors import CANDIDATES, PortableVectors, VectorIndex, fuse, to_bytes
from chat.storage.executor import run_db

from . import embedding

logger = logging.getLogger(__name__)

SEARCH_MAX = 50
VECTORS: VectorIndex = PortableVectors()

# Processing tasks of this process, kept referenced until they end.
_background: set[asyncio.Task] = set()


async def settle_processing(within: float) -> None:
    """Wait up to `within` seconds for this process's processing tasks (tests, a server shutting down)."""
    if _background:
        await asyncio.wait(list(_background), timeout=within)


async def accept(*, user_pk: int, username: str, name: str, content: bytes, declared_type: str,
                 description: str = "", metadata: dict | None = None, shared: bool = False) -> KnowledgeDocument:
    """Check an upload, store its row (`processing`) and start reading it in the background."""
    if not content:
        raise BadRequest(400, f"{name!r} is empty: upload a document with content.")
    if len(content) > settings.CIRKELLINE_KNOWLEDGE_MAX_BYTES:
        raise BadRequest(413, f"{name!r} is too large: the limit is {settings.CIRKELLINE_KNOWLEDGE_MAX_BYTES} bytes.")
    file_type = extraction.detect_type(content, name, declared_type)
    doc = await run_db(KnowledgeDocument.objects.start, user_pk, name=name, description=description,
                       file_type=file_type, size=len(content), shared=shared, metadata=metadata or {})
    task = asyncio.get_running_loop().create_task(
        process(doc.pk, user_pk=user_pk, username=username, content=content, file_type=file_type),
        name=f"cirkelline-document-{doc.content_id}")
    _background.add(task)
    task.add_done_callback(_background.discard)
    return doc


async def process(doc_pk: int, *, user_pk: int, username: str, content: bytes, file_type: str) -> None:
    """Read, chunk, embed and store one document; its row ends `completed` or `failed`. Never raises."""
    try:
        try:
            extracted = await asyncio.to_thread(extraction.extract, content, file_type)
        except extraction.ExtractionFailed as exc:
            await run_db(KnowledgeDocument.objects.fail, doc_pk, str(exc))
            return
        chunks = chunk_pages(extracted.pages, paged=file_type == extraction.PDF)
        vectors, model, note = None, "", ""
        if embedding.configured():
            result = await embedding.embed_document([c.text for c in chunks], user_pk=user_pk, username=username,
                                                    document_id=str(doc_pk))
            if result.vectors is not None:
                vectors, model = [to_bytes(v) for v in result.vectors], result.model
            else:
                note = result.note
        await run_db(KnowledgeDocument.objects.complete, doc_pk, chunks, pages=len(extracted.pages),
                     embeddings=vectors, embedding_model=model, note=note)
    except asyncio.CancelledError:
        await asyncio.shield(run_db(KnowledgeDocument.objects.fail, doc_pk, "Processing was stopped (the server "
                                                                             "shut down); upload the file again."))
        raise
    except Exception:  # noqa: BLE001 - the row says it failed; the log has the cause
        logger.exception("document %s: processing failed", doc_pk)
        try:
            await run_db(KnowledgeDocument.objects.fail, doc_pk, "Processing failed; upload the file again.")
        except Exception:  # noqa: BLE001 - the database is down: the timeout marks it failed later
            logger.exception("document %s: could not record its failure", doc_pk)


async def search(user_pk: int, query: str, *, limit: int = 5, username: str = "") -> list[Hit]:
    """The best `limit` chunks for `query` among those the user may read, best first."""
    limit = max(1, min(limit, SEARCH_MAX))
    if not embedding.configured():
        return await run_db(lexical, user_pk, query, limit=limit)
    lexical_hits = await run_db(lexical, user_pk, query, limit=CANDIDATES)
    vector = await embedding.embed_query(query, user_pk=user_pk, username=username)
    if vector is None:
        return lexical_hits[:limit]
    nearest = await run_db(VECTORS.rank, user_pk, vector, model=embedding.model_name(),
                           candidates=[h.chunk_id for h in lexical_hits], limit=CANDIDATES)
    fused = fuse([h.chunk_id for h in lexical_hits], nearest, limit=limit)
    known = {h.chunk_id: h for h in lexical_hits}
    missing = [i for i in fused if i not in known]
    if missing:
        known.update(await run_db(hits_by_ids, user_pk, missing))
    return [known[i] for i in fused if i in known]
