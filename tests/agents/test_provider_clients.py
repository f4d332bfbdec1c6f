"""Provider SDK clients: shared per event loop and shard, and never paying for a TLS context each."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from chat.agents import shared_clients
from chat.agents.providers import ModelSpec, build_model


@pytest.fixture
def openai_like(settings):
    settings.CIRKELLINE_MODEL_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CIRKELLINE_PROVIDER_CLIENTS = 1
    return ModelSpec("openai-like", "fake")


@pytest.fixture
def certificate_loads(monkeypatch):
    """How many times a TLS context loaded certificates (what building one costs: ~20 ms)."""
    loads = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        loads.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    shared_clients.tls_context.cache_clear()
    yield loads
    shared_clients.tls_context.cache_clear()


def _client_in_a_new_loop(spec: ModelSpec):
    async def build():
        return build_model("leader", spec).get_async_client()

    return asyncio.run(build())


def test_clients_of_every_event_loop_share_one_tls_context(openai_like, certificate_loads):
    """Guards against each SDK client building (and loading certificates into) a TLS context of
    its own (chat/agents/shared_clients.py shared_openai_client without `tls_context`): every new
    event loop and shard would pay ~20 ms of CPU for it, even against a plain-http provider."""
    first = _client_in_a_new_loop(openai_like)
    second = _client_in_a_new_loop(openai_like)

    assert first is not second  # one client per event loop
    assert len(certificate_loads) <= 1


async def test_one_loop_hands_every_model_the_same_client(openai_like):
    models = [build_model(label, openai_like) for label in ("leader", "research-specialist")]
    clients = {id(m.get_async_client()) for m in models}
    assert len(clients) == 1


def test_the_shared_tls_context_verifies_certificates():
    context = shared_clients.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
