"""Observability test tools: /metrics read with prometheus-client's own parser, logs with request ids."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chat.observability.logs import TextFormatter
from chat.observability.request_id import RequestContextFilter

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, keyed by (sample name, its labels)."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled counter appears on its first increment)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def metrics_token(settings) -> str:
    settings.CIRKELLINE_METRICS_TOKEN = METRICS_TOKEN
    return METRICS_TOKEN


@pytest.fixture
def scrape(api, metrics_token):
    """GET /metrics with the bearer token; its samples."""

    async def read() -> dict:
        response = await api.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
        assert response.status_code == 200, response.text
        # Parsed off the loop: prometheus_client's parser takes ~0.1 s here, and longer on a busy
        # host, on the loop the server's watch measures (a test of that watch saw its own stall).
        return await asyncio.to_thread(parse_metrics, response.text)

    return read


@pytest.fixture
def log_lines(caplog):
    """caplog formatted as the server's console handler formats (request ids, fields, redaction)."""
    caplog.handler.addFilter(RequestContextFilter())
    caplog.handler.setFormatter(TextFormatter())
    caplog.set_level(logging.INFO)
    return caplog


class AsgiStream:
    """A request sent straight into the ASGI app, its body read as the app sends it.

    httpx's ASGITransport hands a response over only once the app has sent all of it, so it
    cannot watch a run's stream while the run is still going; this can.
    """

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> None:
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode()),
                        *((k.lower().encode(), v.encode()) for k, v in headers.items())],
            "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        }
        self.body = body
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self._messages: asyncio.Queue = asyncio.Queue()
        self._disconnected = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def _receive(self) -> dict:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict) -> None:
        await self._messages.put(message)

    async def __aenter__(self) -> AsgiStream:
        from cirkelline_site.asgi import application

        self._task = asyncio.get_running_loop().create_task(application(self.scope, self._receive, self._send))
        start = await asyncio.wait_for(self._messages.get(), 30)
        self.status, self.headers = start["status"], dict(start["headers"])
        return self

    async def lines(self) -> AsyncIterator[str]:
        """The body's lines as they arrive, until the response ends."""
        pending = ""
        while True:
            message = await asyncio.wait_for(self._messages.get(), 60)
            pending += message.get("body", b"").decode()
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line
            if not message.get("more_body", False):
                return

    async def __aexit__(self, *exc) -> None:
        self._disconnected.set()
        await asyncio.wait_for(self._task, 30)


def form(**fields: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of a urlencoded form."""
    from urllib.parse import urlencode

    return {"content-type": "application/x-www-form-urlencoded"}, urlencode(fields).encode()
