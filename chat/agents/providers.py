"""Model factory: `CIRKELLINE_MODEL=provider:model_id` -> an agno Model.

| CIRKELLINE_MODEL            | model                                                         |
|-----------------------------|---------------------------------------------------------------|
| (empty)                     | Gemini if a Google key is set, else OpenAI if an OpenAI key is |
|                             | set, else `demo`                                               |
| `google:<id>`               | agno `Gemini` (GOOGLE_API_KEY or GEMINI_API_KEY)              |
| `openai:<id>`               | agno `OpenAIChat` (OPENAI_API_KEY)                            |
| `openai-responses:<id>`     | agno `OpenAIResponses` (OPENAI_API_KEY)                       |
| `openai-like:<id>`          | agno `OpenAILike` at CIRKELLINE_MODEL_BASE_URL (vLLM, LM Studio, |
|                             | llama.cpp server, Ollama, the test fake provider, ...)         |
| `ollama:<id>`               | Ollama's OpenAI-compatible API (default http://127.0.0.1:11434/v1) |
| `llama-cpp:<id>`            | llama.cpp `llama-server` (default http://127.0.0.1:8080/v1)   |
| `demo`                      | the offline demo (chat.agents.demo.demo_script)              |
| `scripted`                  | the scripted model, CIRKELLINE_SCRIPTED_LATENCY s per call    |

OpenAI-compatible chat models stream through chat.agents.openai_lean when CIRKELLINE_MODEL_CLIENT
is lean (the same deltas without the SDK's per-call work), else through agno's SDK call.
Every model gets exactly one retry layer: Cirkelline's (`ResilientModel`, chat.agents.retry).
agno's own `Model.retries` stays 0 and SDK clients are built with `max_retries=0`. Every run
builds its own Model objects, which share SDK clients (connection pools) per event loop
(chat.agents.shared_clients says how, and why that is an override of agno).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from agno.models.base import Model
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import scripted
from .demo import demo_script
from .openai_lean import LeanStreaming
from .retry import ResilientModel
from .scripted import ScriptedModel
from .shared_clients import SharedGeminiClient, shared_openai_client


@dataclass(frozen=True)
class ModelSpec:
    provider: str
    model_id: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model_id}" if self.model_id else self.provider


def model_spec() -> ModelSpec:
    """The configured model, with the documented defaults applied."""
    raw = settings.CIRKELLINE_MODEL.strip()
    if not raw:
        if settings.GOOGLE_API_KEY:
            return ModelSpec("google", "gemini-2.5-flash")
        if settings.OPENAI_API_KEY:
            return ModelSpec("openai", "gpt-4.1-mini")
        return ModelSpec("demo", "")
    provider, _, model_id = raw.partition(":")
    provider = provider.strip().lower()
    if provider not in _BUILDERS:
        raise ImproperlyConfigured(
            f"CIRKELLINE_MODEL={raw!r}: unknown provider {provider!r}; use one of {', '.join(sorted(_BUILDERS))}"
        )
    if provider not in ("demo", "scripted") and not model_id.strip():
        raise ImproperlyConfigured(f"CIRKELLINE_MODEL={raw!r}: give a model id, e.g. {provider}:<model>")
    return ModelSpec(provider, model_id.strip())


# The model classes are built on first use: each needs its provider's SDK, imported only then.


@functools.cache
def _openai_classes():
    from agno.models.openai import OpenAIChat, OpenAILike, OpenAIResponses

    _SharedAsyncClient = shared_openai_client()

    class CirkellineOpenAIChat(ResilientModel, LeanStreaming, _SharedAsyncClient, OpenAIChat):
        pass

    class CirkellineOpenAILike(ResilientModel, LeanStreaming, _SharedAsyncClient, OpenAILike):
        pass

    class CirkellineOpenAIResponses(ResilientModel, _SharedAsyncClient, OpenAIResponses):
        pass

    return CirkellineOpenAIChat, CirkellineOpenAILike, CirkellineOpenAIResponses


@functools.cache
def _gemini_class():
    from agno.models.google import Gemini

    class CirkellineGemini(ResilientModel, SharedGeminiClient, Gemini):
        pass

    return CirkellineGemini


class ResilientScriptedModel(ResilientModel, ScriptedModel):
    """The scripted model behind the same retry layer as real providers (for fault tests)."""


# --- builders ----------------------------------------------------------------------------


def _openai_common(**extra: Any) -> dict[str, Any]:
    return {"max_retries": 0, "timeout": settings.CIRKELLINE_MODEL_TIMEOUT, **extra}


def _build_google(spec: ModelSpec, label: str) -> Model:
    if not settings.GOOGLE_API_KEY:
        raise ImproperlyConfigured("CIRKELLINE_MODEL uses google: but neither GOOGLE_API_KEY nor GEMINI_API_KEY is set")
    return _gemini_class()(id=spec.model_id, api_key=settings.GOOGLE_API_KEY, timeout=settings.CIRKELLINE_MODEL_TIMEOUT)


def _build_openai(spec: ModelSpec, label: str) -> Model:
    if not settings.OPENAI_API_KEY:
        raise ImproperlyConfigured("CIRKELLINE_MODEL uses openai: but OPENAI_API_KEY is not set")
    chat, _, _ = _openai_classes()
    return chat(id=spec.model_id, api_key=settings.OPENAI_API_KEY, **_openai_common())


def _build_openai_responses(spec: ModelSpec, label: str) -> Model:
    if not settings.OPENAI_API_KEY:
        raise ImproperlyConfigured("CIRKELLINE_MODEL uses openai-responses: but OPENAI_API_KEY is not set")
    _, _, responses = _openai_classes()
    return responses(id=spec.model_id, api_key=settings.OPENAI_API_KEY, **_openai_common())


def _openai_compatible(default_base_url: str | None):
    def build(spec: ModelSpec, label: str) -> Model:
        base_url = settings.CIRKELLINE_MODEL_BASE_URL or default_base_url
        if not base_url:
            raise ImproperlyConfigured(
                f"CIRKELLINE_MODEL={spec}: set CIRKELLINE_MODEL_BASE_URL to the server's /v1 URL"
            )
        _, like, _ = _openai_classes()
        return like(
            id=spec.model_id,
            name="OpenAILike",
            provider=spec.provider,
            base_url=base_url,
            api_key=settings.CIRKELLINE_MODEL_API_KEY or "not-needed",
            **_openai_common(),
        )

    return build


def _build_demo(spec: ModelSpec, label: str) -> Model:
    # A short pause per delta so the demo visibly streams.
    return ResilientScriptedModel(
        id="cirkelline-demo", name="Demo", provider="Cirkelline demo", label=label, script=demo_script,
        latency=0.05, chunk_delay=0.02, chunk_chars=12, recorder=scripted.RECORDER, failures=scripted.FAILURES,
    )


def _build_scripted(spec: ModelSpec, label: str) -> Model:
    return ResilientScriptedModel(
        id=spec.model_id or "scripted", label=label, script=demo_script, latency=settings.CIRKELLINE_SCRIPTED_LATENCY,
        recorder=scripted.RECORDER, failures=scripted.FAILURES,
    )


_BUILDERS = {
    "google": _build_google,
    "gemini": _build_google,
    "openai": _build_openai,
    "openai-responses": _build_openai_responses,
    "openai-like": _openai_compatible(None),
    "ollama": _openai_compatible("http://127.0.0.1:11434/v1"),
    "llama-cpp": _openai_compatible("http://127.0.0.1:8080/v1"),
    "demo": _build_demo,
    "scripted": _build_scripted,
}


def build_model(label: str, spec: ModelSpec | None = None) -> Model:
    """A model for one agent of the team (`label` is "leader" or a member id)."""
    spec = spec or model_spec()
    return _BUILDERS[spec.provider](spec, label)
