"""Websocket test tools: in-process sockets (Channels' WebsocketCommunicator) as alice, bob or nobody."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from ..conftest import adb

ORIGIN = (b"origin", b"http://127.0.0.1")
TERMINAL = {"TeamRunCompleted", "TeamRunError", "TeamRunCancelled"}
# How long a test waits for the next frame before it fails (a bound, not a synchronisation).
FRAME_WAIT = 15.0


def token_for(user) -> str:
    return str(AccessToken.for_user(user))


def session_cookie(user) -> tuple[bytes, bytes]:
    """A `Cookie` header for a real Django login session of `user`."""
    client = Client()
    client.force_login(user)
    return b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()


@dataclass
class Socket:
    """One websocket, with what it has received so far (frames read past are kept)."""

    comm: WebsocketCommunicator
    subprotocol: str | None = None
    received: list[dict] = field(default_factory=list)
    _taken: set[int] = field(default_factory=set)

    async def send(self, **frame) -> None:
        await self.comm.send_to(text_data=json.dumps(frame))

    async def next(self) -> dict:
        output = await self.comm.receive_output(FRAME_WAIT)
        if output["type"] == "websocket.close":
            frame = {"type": "closed", "code": output.get("code")}
        else:
            frame = json.loads(output["text"])
        self.received.append(frame)
        return frame

    async def until(self, predicate) -> dict:
        """The first frame matching `predicate` that no earlier `until` returned, reading more
        frames as needed (frames arrive in any order across runs and tasks)."""
        for index, frame in enumerate(self.received):
            if index not in self._taken and predicate(frame):
                self._taken.add(index)
                return frame
        while True:
            frame = await self.next()
            if predicate(frame):
                self._taken.add(len(self.received) - 1)
                return frame
            assert frame["type"] != "closed", f"socket closed while waiting: {frame}"

    async def until_type(self, kind: str, **match) -> dict:
        return await self.until(lambda f: f["type"] == kind and all(f.get(k) == v for k, v in match.items()))

    async def run(self, message: str, **fields) -> tuple[str, str]:
        """Send a run frame; (run_id, session_id) from its run_started frame."""
        ref = f"ref-{len(self.received)}-{message[:10]}"
        await self.send(type="run", message=message, ref=ref, **fields)
        started = await self.until(lambda f: f.get("ref") == ref)
        assert started["type"] == "run_started", started
        return started["run_id"], started["session_id"]

    async def finish(self, run_id: str) -> dict:
        return await self.until_type("run_finished", run_id=run_id)

    def events(self, run_id: str) -> list[dict]:
        """Every event of `run_id` received so far, in order."""
        return [e for f in self.received if f["type"] == "events" and f["run_id"] == run_id for e in f["events"]]

    async def nothing_more(self) -> bool:
        return await self.comm.receive_nothing(timeout=0.3)


@pytest.fixture
async def connect():
    """connect(user=None, via="cookie"|"header"|"frame"|None, path=...) -> a connected Socket."""
    from cirkelline_site.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_socket(user=None, via: str | None = "cookie", path: str = "/ws/chat/",
                          headers: list | None = None, subprotocols: list | None = None) -> Socket:
        headers = [ORIGIN] if headers is None else headers
        if not any(name == b"host" for name, _ in headers):  # a browser's handshake always has one
            headers = [*headers, (b"host", b"127.0.0.1")]
        if user is not None and via == "cookie":
            headers = [*headers, await adb(session_cookie, user)]
        if user is not None and via == "header":
            subprotocols = ["bearer", token_for(user)]
        comm = WebsocketCommunicator(application, path, headers=headers, subprotocols=subprotocols)
        connected, detail = await comm.connect(timeout=FRAME_WAIT)
        # A refused socket's consumer still listens on the channel layer until it hears the
        # disconnect: it is ended with the others (left running, its Redis read outlived the test's
        # loop and hung the loop's teardown).
        opened.append(comm)
        assert connected, f"handshake refused ({detail})"
        socket = Socket(comm, subprotocol=detail)
        if user is not None and via == "frame":
            await socket.send(type="auth", token=token_for(user))
        if user is not None and via is not None:
            ready = await socket.next()
            assert ready == {"type": "ready", "user": user.username, "via": "session" if via == "cookie" else "jwt"}
        return socket

    yield open_socket
    for comm in opened:
        try:
            await comm.disconnect()
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - already closed by the test
            pass
