"""The fake provider's server: uvicorn's HTTP/1.1 protocol on a loopback socket, plus the
connection table that the counters and the reset fault need.

What is uvicorn's: parsing and framing HTTP (keep-alive, chunked bodies, flow control, the
ASGI ``http.disconnect`` that ends a request the moment its client hangs up). The protocol is
``httptools``, not uvicorn's pure-Python ``h11``: under the benchmark's load of concurrent
streams the fake shares the CPU with the server it measures, and with h11 it took markedly more
CPU than the hand-written server it replaced (with httptools, close to it; figures in
docs/PERFORMANCE.md, "Other observations").

What is not, and why:
- ``uvicorn.Server`` (the process runner) is not used; asyncio's ``loop.create_server`` accepts
  with uvicorn's protocol class, built as ``uvicorn.Server`` builds it. The runner installs
  signal handlers when started from the main thread (a test's loop, the CLI), waits without a
  bound for open responses on shutdown (a stalled stream never ends), and its shutdown polls on
  a 0.1 s tick plus a fixed 0.1 s sleep: a tax on each of the many tests that start a provider.
- Connection accounting: ASGI sees requests, not connections, yet the tests prove that a client
  closed every connection. A thin wrapper around uvicorn's protocol (the asyncio ``Protocol``
  interface only) counts accept and close.
- A TCP reset: ASGI can only end a response, and an app that raises only makes uvicorn close
  the connection (a FIN: the client reads a clean, if early, end of file). The ``RESET`` fault
  finds its connection by the peer address, waits until what was sent has left the process,
  sets ``SO_LINGER`` to zero and aborts, so the client gets ECONNRESET.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
from collections import deque
from types import TracebackType
from typing import Any, Final, Self

import uvicorn
from uvicorn.server import ServerState

from . import wire
from .app import ChatCompletionsApp
from .behaviours import Behaviour, check_knobs
from .recording import Ledger

HOST: Final = "127.0.0.1"
# Never close an idle keep-alive connection from this side: a client reusing a pooled
# connection just as the server closes it gets an error no real provider causes that often,
# and benchmarks would count it. (uvicorn's default is 5 s, the same as httpx's pool expiry.)
_IDLE_KEEP_ALIVE_SECONDS: Final = 24 * 3600
_BACKLOG: Final = 4096
Peer = tuple[str, int]


class _TrackedConnection(asyncio.Protocol):
    """uvicorn's protocol for one connection, reporting accept and close to the provider and
    able to reset the connection once what was written has left the process."""

    __slots__ = ("_inner", "_provider", "_peer", "_transport", "_writable")

    def __init__(self, inner: asyncio.Protocol, provider: FakeProvider) -> None:
        self._inner = inner
        self._provider = provider
        self._peer: Peer | None = None
        self._transport: asyncio.Transport | None = None
        self._writable = asyncio.Event()  # clear while the transport's write buffer is over its limit
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1]))
        self._transport = transport
        self._provider._connections[self._peer] = self
        self._provider.count_connection(+1)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        try:
            self._inner.connection_lost(exc)
        finally:
            if self._peer is not None:
                self._provider._connections.pop(self._peer, None)
                self._provider.count_connection(-1)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._writable.clear()
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._writable.set()
        self._inner.resume_writing()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def reset(self) -> None:
        """Drop the connection with a TCP RST, the way a crashing upstream does, once what was
        sent so far has left the process (the client must see it before the RST)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        # With a zero high-water mark the transport pauses us while anything is unsent and
        # resumes us once the buffer is empty.
        transport.set_write_buffer_limits(high=0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._writable.wait(), 5.0)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class FakeProvider(Ledger):
    """The fake provider: server, behaviour queue and counters.

    Run it with ``with FakeProvider() as p`` (own loop in a daemon thread: for sync code and
    for tests whose event loop is short-lived) or ``async with FakeProvider() as p`` (in the
    running loop). The keyword arguments are the server-wide defaults a ``Behaviour`` may
    override per request; the counters and the request log are ``Ledger``'s. ``http`` names
    uvicorn's protocol implementation (see the module docstring).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        model: str = "fake",
        ttft: float = 0.0,
        tokens_per_second: float = 0.0,
        latency: float = 0.0,
        chunk_words: int = 1,
        answer_words: int = 30,
        member_id: str | None = None,
        keep_alive: bool = True,
        default: Behaviour | None = None,
        max_recorded: int | None = None,
        http: str = "httptools",
    ) -> None:
        check_knobs(ttft, tokens_per_second, latency, chunk_words, answer_words)
        super().__init__(default, max_recorded)
        self.port = port
        self.model = model
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second
        self.latency = latency
        self.chunk_words = chunk_words
        self.answer_words = answer_words
        self.member_id = member_id
        self.keep_alive = keep_alive
        self.http = http  # uvicorn's protocol: "httptools", or "h11" to compare their cost
        self.stopping = False
        # /v1/embeddings: every request's body, and the statuses to answer the next ones with.
        self.embedding_requests: list[dict] = []
        self.embedding_failures: deque[int] = deque()

        # Touched only on the server's loop.
        self._connections: dict[Peer, _TrackedConnection] = {}
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- embeddings --

    def embed(self, raw: bytes) -> tuple[int, bytes]:
        """`POST /v1/embeddings`: OpenAI's shape, vectors from wire.embedding (deterministic, with a
        few synonyms sharing a dimension), usage one token per word; or the next queued failure."""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("input"), (str, list)):
            return 400, wire.error_body("'input' is required.", "invalid_request_error", "invalid_input")
        self.embedding_requests.append(body)
        if self.embedding_failures:
            status = self.embedding_failures.popleft()
            return status, wire.error_body(f"Simulated {status}.", "server_error", None)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        return 200, wire.embeddings_body(body.get("model") or self.model, texts)

    # -- connections --

    async def reset_connection(self, peer: Peer) -> None:
        """Reset the connection of ``peer`` (the ASGI scope's ``client``) with a TCP RST."""
        connection = self._connections.get((str(peer[0]), int(peer[1])))
        if connection is not None:
            await connection.reset()

    def _abort_connections(self) -> None:
        for connection in list(self._connections.values()):
            connection.abort()

    # -- lifecycle --

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._server is None:
            raise RuntimeError("the fake provider is not running")
        return f"http://{HOST}:{self.port}/v1"

    async def start(self) -> Self:
        """Listen on 127.0.0.1 (``port=0``: a free port, then ``self.port`` is the real one)."""
        if self._server is not None:
            raise RuntimeError("already started")
        config = uvicorn.Config(
            ChatCompletionsApp(self),
            http=self.http,
            ws="none",
            lifespan="off",
            # No dictConfig of the host process's logging; only uvicorn's own loggers are set to
            # WARNING, so a request is not an INFO line (its protocol logs access whenever the
            # logger has handlers, as under pytest) but a failing ASGI call still shows.
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # scope["client"] must stay the real peer: the reset looks it up
            timeout_keep_alive=_IDLE_KEEP_ALIVE_SECONDS,
        )
        config.load()
        state = ServerState()
        loop = asyncio.get_running_loop()

        def accept() -> asyncio.Protocol:
            protocol = config.http_protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
            return _TrackedConnection(protocol, self)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, self.port))
            sock.listen(_BACKLOG)
            sock.setblocking(False)
            self._server = await loop.create_server(accept, sock=sock, backlog=_BACKLOG)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self.stopping = False
        return self

    async def aclose(self) -> None:
        """Stop listening, cut every connection and wait until their requests have ended
        (each with outcome ``SERVER_STOPPED``)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping = True
        server.close()
        self._abort_connections()
        await server.wait_closed()
        # A request ends once its handler has seen the disconnect; a connection accepted just
        # before close() may still register, so abort again until nothing is left.
        for _ in range(100):
            if await self.wait_until(lambda p: p._active_requests == 0 and p._open_connections == 0, 0.05):
                return
            self._abort_connections()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def start_in_thread(self, timeout: float = 5.0) -> Self:
        """Run the server on a new event loop in a daemon thread; return once it listens."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                try:
                    loop.run_until_complete(self.start())
                except BaseException as exc:  # handed to the starting thread below
                    failure.append(exc)
                    return
                finally:
                    ready.set()
                loop.run_forever()
                loop.run_until_complete(self.aclose())
                # Whatever aclose's bounded wait left (a handler that did not see its abort) is
                # cancelled here, so no task dies pending with the loop.
                leftovers = asyncio.all_tasks(loop)
                for task in leftovers:
                    task.cancel()
                if leftovers:
                    loop.run_until_complete(asyncio.wait(leftovers))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the fake provider did not start in time")
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threaded server (closing its connections) and join its thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already stopped
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start_in_thread()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
