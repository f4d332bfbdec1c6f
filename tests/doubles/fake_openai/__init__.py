"""A loopback fake of the OpenAI chat-completions API, for tests and benchmarks.

Why it exists: the app talks to model providers through agno's OpenAI-compatible model
class, i.e. through the real ``openai`` SDK and its HTTP stack. Faking at the HTTP level
(instead of swapping the agno model) keeps that whole path (connection pooling, SSE
parsing, error mapping, retries, cancellation) under test, and lets a benchmark push
~1000 concurrent streamed calls through the app without paying or waiting for a real
provider.

The HTTP server is uvicorn's (``server.py``), under a small ASGI app (``app.py``). Two needs
of the tests cannot be met through ASGI, and only they are hand-written, in ``server.py``
(where the reasons are spelled out): counting TCP connections (the tests prove a client
closed every one) and aborting a connection with a TCP reset mid-stream.

The parts:

- ``behaviours``: ``Behaviour`` (per-request script and fault), ``Fault``, ``Outcome``.
- ``script``: what a request is answered (the auto script a team meets) and token counts.
- ``wire``: OpenAI's JSON and SSE encoding.
- ``recording``: the behaviour queue, the request log and the counters (thread-safe).
- ``app`` / ``server``: the ASGI app and the server's lifecycle.

Faults: HTTP 429 (with or without ``Retry-After``), 500, 503, 529, the client errors 400,
401, 403, 404, 413 and 422 (never worth a retry), a TCP reset mid-stream, a stalled stream,
a malformed chunk, slow response headers, and delegation to an unknown member or with an
empty task. Embeddings: ``POST /v1/embeddings`` answers OpenAI's shape with deterministic vectors
(``wire.embedding``: a word, or its synonym group in ``wire.SYNONYMS``, per dimension; one token
per word), logs each body in ``embedding_requests`` and answers the statuses queued in
``embedding_failures`` first. Observability: ``open_connections``, ``active_requests``, ``total_requests``,
``requests`` (body, behaviour and ``Outcome`` of each call) and ``wait_idle``.

In-process use (tests)::

    with FakeProvider() as provider:            # own event loop in a daemon thread
        client = openai.AsyncOpenAI(base_url=provider.base_url, api_key="x")
        provider.enqueue(Behaviour.rate_limited(retry_after=3))
        ...
        assert provider.wait_idle_sync(1.0)

    async with FakeProvider() as provider:      # inside an already running loop
        ...

As a process (benchmarks): ``python -m tests.doubles.fake_openai --port 9100 --ttft 1.0``;
``python -m tests.doubles.fake_openai --help`` lists the flags.
"""

from .behaviours import Behaviour, Fault, Outcome
from .recording import RecordedRequest
from .script import (
    DELEGATE_TOOL,
    Reply,
    ToolCall,
    compose_answer,
    estimate_tokens,
    first_member_id,
    message_text,
    prompt_tokens,
    script_reply,
)
from .server import HOST, FakeProvider

__all__ = [
    "DELEGATE_TOOL",
    "HOST",
    "Behaviour",
    "FakeProvider",
    "Fault",
    "Outcome",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "compose_answer",
    "estimate_tokens",
    "first_member_id",
    "message_text",
    "prompt_tokens",
    "script_reply",
]
