"""Embedding calls for documents, billed like every other model call (docs/COST.md).

- A document's chunks, at upload (`embed_document`): only within the user's monthly budget (over
  it, the document is kept unembedded and searched by its words, its status message says so);
  billed as a usage row of its own, kind `embedding`, with its ModelCall ledger (agent
  `embedding`), priced by the PriceRule of the embedding model (none: `unpriced`, as for any
  model).
- A question (`embed_query`): inside a run (the team's `search_my_documents` tool) on that run's
  ledger as agent `embedding` (a `CutCall` with the provider's reported tokens: a call agno
  reports no usage for, billed by the run service with the others); outside a run (`GET
  /knowledge/search`) as a usage row of kind `embedding`, within budget (over it: lexical only).

A failed call is billed for what the provider reported (nothing, for an error answer) and the
search or the document falls back to the lexical ranking.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from chat.agents.embeddings import Embedded, embed, embedding_model
from chat.context import CutCall, current_run
from chat.storage.executor import run_db
from metrics.budgets import budget_refusal
from metrics.models import RunStatus, UsageKind
from metrics.recording import record_run

logger = logging.getLogger(__name__)

EMBEDDING_AGENT = "embedding"
OVER_BUDGET = "Not embedded: your monthly budget is used up, so the document is searched by its words only."
TOKEN_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
                "cache_write_tokens")


@dataclass
class DocumentVectors:
    vectors: list[list[float]] | None
    model: str = ""
    note: str = ""


def configured() -> bool:
    return embedding_model() is not None


def model_name() -> str:
    """The configured model as documents record it (`provider:model`)."""
    return str(embedding_model() or "")


def _tokens(result: Embedded) -> dict[str, int]:
    return {**dict.fromkeys(TOKEN_FIELDS, 0), "input_tokens": result.tokens, "total_tokens": result.tokens}


def _status(result: Embedded) -> tuple[str, str]:
    if result.error is None:
        return RunStatus.COMPLETED, ""
    if result.error.status == 429:
        return RunStatus.RATE_LIMITED, "rate_limited"
    return RunStatus.ERROR, "provider_error"


async def _bill(result: Embedded, *, user_pk: int, username: str, started_at: datetime, started: float) -> None:
    """A usage row of kind `embedding` with its ledger, for calls made outside any run."""
    if not result.calls:
        return
    status, error_type = _status(result)
    usage = {
        "run_id": str(uuid.uuid4()), "user_id": user_pk, "username": username, "session_id": "", "team_id": "",
        "kind": UsageKind.EMBEDDING, "model": str(result.model), "status": status, "error_type": error_type,
        "error_message": str(result.error or "")[:2000], **_tokens(result), "model_calls": result.calls,
        "retries": result.retries, "streamed": False, "started_at": started_at, "finished_at": datetime.now(UTC),
        "duration_ms": int((time.monotonic() - started) * 1000)}
    calls = [{"agent": EMBEDDING_AGENT, "model": result.model.model_id, "provider": result.model.provider,
              "calls": result.calls, "tokens": _tokens(result), "estimated_tokens": 0, "provider_cost": None}]
    try:
        await asyncio.shield(run_db(record_run, usage, calls))
    except Exception:  # noqa: BLE001 - the database is down: logged with what went unbilled
        logger.exception("embedding calls of user %s could not be billed: %s tokens, %s calls", user_pk,
                         result.tokens, result.calls)


async def _within_budget(user_pk: int) -> bool:
    return await run_db(budget_refusal, user_pk, datetime.now(UTC)) is None


async def embed_document(texts: list[str], *, user_pk: int, username: str, document_id: str) -> DocumentVectors:
    """The vectors of a document's chunks, billed to the user; None with a note when not embedded."""
    model = embedding_model()
    if model is None or not texts:
        return DocumentVectors(None)
    if not await _within_budget(user_pk):
        return DocumentVectors(None, note=OVER_BUDGET)
    started_at, started = datetime.now(UTC), time.monotonic()
    result = await embed(texts, model)
    await _bill(result, user_pk=user_pk, username=username, started_at=started_at, started=started)
    if result.vectors is None:
        logger.warning("document %s: embedding failed (%s); searched by its words only", document_id, result.error)
        return DocumentVectors(None, note=f"Not embedded ({result.error}); the document is searched by its words "
                                          "only.")
    return DocumentVectors(result.vectors, model=str(model))


async def embed_query(query: str, *, user_pk: int, username: str) -> list[float] | None:
    """A question's vector, billed to the run it is asked in, or to the user; None: lexical only."""
    model = embedding_model()
    if model is None:
        return None
    ctx = current_run.get()
    if ctx is None and not await _within_budget(user_pk):
        return None
    started_at, started = datetime.now(UTC), time.monotonic()
    result = await embed([query], model)
    if ctx is not None:
        if result.calls:
            # agno reports no usage for this call: the run service bills it with the run's others.
            ctx.cut_calls.append(CutCall(agent=EMBEDDING_AGENT, model=model.model_id, provider=model.provider,
                                         tokens=_tokens(result), calls=result.calls, estimated=False))
    else:
        await _bill(result, user_pk=user_pk, username=username, started_at=started_at, started=started)
    return result.vectors[0] if result.vectors else None
