"""The embedding model (CIRKELLINE_EMBEDDING_MODEL): texts in, vectors out, over the
OpenAI-compatible `/v1/embeddings` wire protocol.

`openai:<id>` calls OpenAI (or CIRKELLINE_EMBEDDING_BASE_URL when set); `openai-like:<id>` calls
CIRKELLINE_EMBEDDING_BASE_URL (Ollama, llama.cpp's server, vLLM, a gateway). The key is
CIRKELLINE_EMBEDDING_API_KEY, else OPENAI_API_KEY. One call carries at most BATCH texts, each cut
to INPUT_CHARS characters. Rate limits (429) and provider failures (5xx, a broken connection) are
retried like the chat models' (CIRKELLINE_MAX_RETRIES, exponential from CIRKELLINE_RETRY_DELAY,
the provider's Retry-After when it sends one, awaited, never blocking the loop); what the provider
reports as used (`usage.prompt_tokens`) is returned with every result, failed attempts included,
so the caller bills each call (chat.runs.embedding).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

BATCH = 64
INPUT_CHARS = 8000
TIMEOUT = 30.0
OPENAI_URL = "https://api.openai.com/v1"


class EmbeddingFailed(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EmbeddingModel:
    provider: str
    model_id: str
    base_url: str
    api_key: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model_id}"


@dataclass
class Embedded:
    """Vectors (None when the calls failed) and what the calls used: the caller bills it."""

    model: EmbeddingModel
    vectors: list[list[float]] | None = None
    calls: int = 0
    tokens: int = 0
    retries: int = 0
    error: EmbeddingFailed | None = None
    status_codes: list[int] = field(default_factory=list)


def embedding_model() -> EmbeddingModel | None:
    """The configured embedding model, or None (lexical search only)."""
    spec = settings.CIRKELLINE_EMBEDDING_MODEL.strip()
    if not spec:
        return None
    provider, _, model_id = spec.partition(":")
    if provider not in ("openai", "openai-like") or not model_id:
        raise ImproperlyConfigured("CIRKELLINE_EMBEDDING_MODEL must be openai:<model> or openai-like:<model>")
    base_url = settings.CIRKELLINE_EMBEDDING_BASE_URL or (OPENAI_URL if provider == "openai" else "")
    if not base_url:
        raise ImproperlyConfigured("CIRKELLINE_EMBEDDING_MODEL=openai-like:... needs CIRKELLINE_EMBEDDING_BASE_URL")
    return EmbeddingModel(provider=provider, model_id=model_id, base_url=base_url.rstrip("/"),
                          api_key=settings.CIRKELLINE_EMBEDDING_API_KEY or settings.OPENAI_API_KEY)


def _delay(attempt: int, response: httpx.Response | None) -> float:
    header = response.headers.get("retry-after") if response is not None else None
    try:
        if header is not None:
            return min(float(header), 60.0)
    except ValueError:
        pass
    return settings.CIRKELLINE_RETRY_DELAY * (2 ** attempt) * random.uniform(0.8, 1.2)


async def _call(client: httpx.AsyncClient, model: EmbeddingModel, texts: list[str], result: Embedded) -> list:
    body = {"model": model.model_id, "input": [t[:INPUT_CHARS] or " " for t in texts]}
    headers = {"Authorization": f"Bearer {model.api_key}"} if model.api_key else {}
    for attempt in range(settings.CIRKELLINE_MAX_RETRIES + 1):
        response = None
        try:
            response = await client.post(f"{model.base_url}/embeddings", json=body, headers=headers)
        except httpx.HTTPError as exc:
            error = EmbeddingFailed(None, f"The embedding provider could not be reached ({type(exc).__name__}).")
        else:
            result.calls += 1
            result.status_codes.append(response.status_code)
            if response.status_code == 200:
                try:
                    payload = response.json()
                    result.tokens += int((payload.get("usage") or {}).get("prompt_tokens") or 0)
                    data = sorted(payload["data"], key=lambda d: d["index"])
                    vectors = [[float(x) for x in d["embedding"]] for d in data]
                except (ValueError, KeyError, TypeError):
                    raise EmbeddingFailed(200, "The embedding provider's answer is malformed.") from None
                if len(vectors) != len(texts):
                    raise EmbeddingFailed(200, "The embedding provider returned the wrong number of vectors.")
                return vectors
            error = EmbeddingFailed(response.status_code, f"The embedding provider answered {response.status_code}.")
            if response.status_code not in (408, 409, 429) and response.status_code < 500:
                raise error
        if attempt == settings.CIRKELLINE_MAX_RETRIES:
            raise error
        result.retries += 1
        await asyncio.sleep(_delay(attempt, response))
    raise AssertionError("unreachable")


async def embed(texts: list[str], model: EmbeddingModel) -> Embedded:
    """The vectors of `texts` (in order), in batches; on failure `vectors` is None and `error` says why."""
    result = Embedded(model=model)
    vectors: list[list[float]] = []
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            for start in range(0, len(texts), BATCH):
                vectors += await _call(client, model, texts[start:start + BATCH], result)
    except EmbeddingFailed as exc:
        result.error = exc
        return result
    result.vectors = vectors
    return result
