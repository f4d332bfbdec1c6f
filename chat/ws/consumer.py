"""The chat websocket consumer: who is on the socket, and which job each of its frames goes to.

A transport like the HTTP views: it authenticates, parses with the run API's own checks
(`chat.runs.request.run_request_from_fields`), and calls the run service (`runs.start_run`,
`runs.cancel_run`, `RunHandle.abort`); it never runs agno or writes rows itself.

- Who: the Django session cookie (the pages; Channels' AuthMiddlewareStack), or a JWT in the
  `Sec-WebSocket-Protocol` header (`bearer, <token>`; the server answers `bearer`) or in a first
  frame `{"type": "auth", "token": ...}`. Never the query string (it ends up in logs). A socket
  with none of these is closed with 4401 after an error frame saying why. The credentials are
  checked again before every run (chat.ws.credentials), so an expired token or an ended login
  refuses new runs.
- Frames are read and checked by chat.ws.client_frames and handled one at a time, so every run
  streams from a task of its own (chat.ws.streams, reading the run's event log: chat.runs.eventlog;
  `run` and `continue` frames become run service calls in chat.ws.run_control), and `cancel` runs
  in a task too: a cancel takes
  effect while runs stream, and several runs share a socket. Closing the socket leaves the runs
  it started going (they can be resumed), unless CIRKELLINE_ON_DISCONNECT is `cancel`.
- `watch`: the socket follows every live run of the user's in the session, on any worker and
  started by any transport, replayed from its start (or after the `seq` the client names) then
  live (chat.ws.watch decides which runs). Runs started later reach it through a notice on the
  session's group (chat.ws.fanout).
- A session renamed (by the user, or named by the model) reaches all of the user's sockets
  (chat.ws.notices).
- A process that drains (SIGTERM: chat.runs.drain) refuses `run` frames (a 503 error frame,
  `code` "draining"), lets its runs finish, then closes every socket with 1012 (service restart;
  chat.ws.shutdown): the page reconnects, to another process, and resumes.
- Limits (chat.ws.limits): frame size (tight before authentication; 1009), frames per second
  (an error frame, then 1008), sockets per user (4429). A large frame is parsed off the loop.

The protocol (frames, close codes, errors) is documented in docs/API.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from chat import runs
from chat.errors import AuthError, BadRequest
from chat.identity import Caller, caller_from_token
from chat.observability import prom, request_id
from chat.runs import eventlog
from metrics.models import RunStatus

from . import client_frames, credentials, frames, limits, notices, revocation, run_control, shutdown, watch
from .fanout import Fanout
from .revocation import user_group
from .streams import Streams
from .tasks import spawn

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncJsonWebsocketConsumer):
    caller: Caller | None = None
    token: str | None = None
    session_key: str | None = None

    counted = False  # in the open-connections gauge
    quota_user: int | None = None  # the user whose socket quota counts this socket
    _grouped: str | None = None  # the user's group (chat.ws.revocation), once authenticated

    async def connect(self) -> None:
        # One request id per connection (the client's X-Request-ID when sane): every run the socket
        # starts, its log lines and usage rows carry it, as for an HTTP request.
        headers = dict(self.scope.get("headers") or ())
        request_id.adopt(headers.get(b"x-request-id", b"").decode("latin-1") or None)
        prom.websocket_opened()
        self.counted = True
        self.streams = Streams(self._send_text)
        self.closed = False
        self.gone = asyncio.get_running_loop().create_future()  # done once the socket is closed
        self.bucket = limits.FrameBucket(settings.CIRKELLINE_WS_FRAMES_PER_SECOND, settings.CIRKELLINE_WS_FRAME_BURST)
        self.fanout = Fanout(self.channel_layer, self.channel_name)
        self._auth_timer: asyncio.TimerHandle | None = None
        if shutdown.drained():  # the process is about to stop: go elsewhere at once
            protocols = self.scope.get("subprotocols") or []
            await self.accept(subprotocol="bearer" if protocols[:1] == ["bearer"] else None)
            await self.restart_close()
            return
        shutdown.track(self)
        protocols = self.scope.get("subprotocols") or []
        if protocols[:1] == ["bearer"]:
            await self.accept(subprotocol="bearer")
            await self._auth_with_token(protocols[1] if len(protocols) > 1 else "")
            return
        await self.accept()
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.session_key = self.scope["session"].session_key
            await self._ready(Caller(pk=user.pk, username=user.get_username(), is_staff=user.is_staff, via="session"))
        else:
            loop = asyncio.get_running_loop()
            self._auth_timer = loop.call_later(credentials.AUTH_TIMEOUT, lambda: spawn(self._refuse(
                "No credentials within 10 seconds: log in, or send {\"type\": \"auth\", \"token\": ...} first."),
                "ws-auth-timeout"))

    async def _ready(self, caller: Caller) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self.quota_user is None:
            if not await limits.quota.acquire(caller.pk, self.channel_name):
                await self.send_json(limits.too_many_sockets_error())
                await self.close(code=limits.CLOSE_TOO_MANY_SOCKETS, reason="too many sockets")
                return
            self.quota_user = caller.pk
        self.caller = caller
        # Every socket of the user hears when their access is revoked (chat.ws.revocation).
        self._grouped = user_group(caller.pk)
        revocation.serving(asyncio.get_running_loop())
        await self.channel_layer.group_add(self._grouped, self.channel_name)
        await self.send_json({"type": "ready", "user": caller.username, "via": caller.via})

    async def _refuse(self, detail: str) -> None:
        """Close an unauthenticated socket: the reason as an error frame, then close code 4401."""
        if self.closed:
            return
        await self.send_json(frames.error(401, detail, code="unauthenticated"))
        await self.close(code=frames.CLOSE_UNAUTHENTICATED, reason="unauthenticated")

    async def _auth_with_token(self, token: Any) -> None:
        if not isinstance(token, str) or not token.strip():
            await self._refuse("The auth frame needs a 'token': an access token from POST /api/token/.")
            return
        try:
            caller = await caller_from_token(token)
        except AuthError as exc:
            if self.caller is None:
                await self._refuse(exc.detail)
            else:
                await self.send_json(frames.error_for(exc))
            return
        if self.caller is not None and caller.pk != self.caller.pk:
            await self.send_json(frames.error(403, "This socket belongs to another user; open a new one."))
            return
        self.token, self.session_key = token, None
        await self._ready(caller)

    async def restart_close(self) -> None:
        """Close with 1012 (the server restarts): the client reconnects, to another process, and resumes."""
        if not self.closed:
            self.closed = True
            await self.close(code=frames.CLOSE_RESTARTING, reason="server restarting")

    async def access_revoked(self, message: dict) -> None:
        """The user's access was revoked somewhere: close this socket unless its own login still holds."""
        if self.caller is None or self.closed:
            return
        try:
            await self._check_credentials()
        except AuthError as exc:
            self.caller = None  # refuse whatever frame comes before the close lands
            await self.send_json(frames.error(401, exc.detail, code="revoked"))
            await self.close(code=frames.CLOSE_UNAUTHENTICATED, reason="revoked")
        except Exception:  # noqa: BLE001 - the database is down: the next frame checks again
            logger.exception("could not re-check a socket's credentials after a revocation")

    async def session_renamed(self, message: dict) -> None:
        """One of the user's sessions got a new name (chat.ws.notices): tell the page."""
        if self.caller is not None and not self.closed:
            await self.send_json(notices.renamed_frame(message))

    async def _check_credentials(self) -> None:
        """Before every run, watch and cancel: the socket's credentials still hold (chat.ws.credentials)."""
        await credentials.recheck(self.caller.pk, token=self.token, session_key=self.session_key)

    # -- frames from the client ------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return
        verdict = self.bucket.take()
        if verdict != "ok":
            error = limits.too_fast_error(verdict, self.bucket)  # the frame is not handled
            if error is not None:
                await self.send_json(error)
            if verdict == "close":
                await self._close(limits.CLOSE_FLOODING, "too many frames")
            return
        limit = limits.frame_limit(self.caller is not None)
        if limits.too_large(text_data or "", limit) or len(bytes_data or b"") > limit:
            await self.send_json(limits.too_large_error(limit, self.caller is not None))
            await self._close(limits.CLOSE_TOO_LARGE, "frame too large")
            return
        try:
            content = await client_frames.read(text_data)
        except BadRequest as exc:
            await self.send_json(frames.error_for(exc))
            return
        await self.receive_json(content)

    async def _close(self, code: int, reason: str) -> None:
        self.closed = True  # nothing more is handled or sent; disconnect() follows
        await self.close(code=code, reason=reason)

    async def receive_json(self, content: dict, **kwargs: Any) -> None:
        kind, ref = content["type"], content.get("ref")
        if kind == "auth":
            await self._auth_with_token(content.get("token"))
        elif self.caller is None:
            await self._refuse("Authenticate first: log in, or send {\"type\": \"auth\", \"token\": ...}.")
        elif kind == "run":
            await self._start_run(content, ref)
        elif kind == "cancel":
            spawn(self._cancel(content.get("run_id"), ref), "ws-cancel")
        elif kind == "continue":
            await self._continue_run(content, ref)
        elif kind == "watch":
            await self._watch(content.get("session_id"), content.get("after"), ref)
        else:
            await self.send_json(frames.error(400, f"Unknown frame type {kind[:40]!r}: use run, continue, cancel, "
                                                   "watch or auth.", ref=ref))

    async def _start_run(self, content: dict, ref: Any) -> None:
        try:
            await self._check_credentials()
            handle = await run_control.start(self.caller, content)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes an error frame (frames.error_for)
            await self.send_json(frames.error_for(exc, ref=ref))
            return
        self.streams.follow(eventlog.LogRef.of(handle.log), -1, own=True, ref=ref)

    async def _continue_run(self, content: dict, ref: Any) -> None:
        """A paused run of the user's, continued with their answers (`requirements`), streamed here
        from the event after its paused part's last."""
        try:
            await self._check_credentials()
            handle = await run_control.proceed(self.caller, content)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes an error frame (frames.error_for)
            await self.send_json(frames.error_for(exc, ref=ref, run_id=content.get("run_id")))
            return
        self.streams.follow(eventlog.LogRef.of(handle.log), handle.index_base - 1, own=True, ref=ref)

    async def _cancel(self, run_id: Any, ref: Any) -> None:
        try:
            client_frames.run_id(run_id)
            await self._check_credentials()
            # Any run of the user's (another tab's too, or one in another process), never anyone else's.
            status = await runs.cancel_run(self.caller.pk, run_id)
        except Exception as exc:  # noqa: BLE001
            await self._send_text(frames.dumps(frames.error_for(exc, ref=ref, run_id=run_id)))
            return
        await self._send_text(frames.dumps({"type": "cancelled", "run_id": run_id, "status": status, "ref": ref}))

    async def _watch(self, session_id: Any, after: Any, ref: Any) -> None:
        """Follow the session's live runs (replayed from their start, or after the client's `seq`)."""
        try:
            await self._check_credentials()
            after = client_frames.after_map(after)
            if session_id is not None:
                await watch.check_session(self.caller.pk, session_id)
            await self.fanout.watch(self.caller.pk, session_id)
            self.streams.keep_session(session_id)
            resumed = await self._resume(session_id, after) if session_id is not None else []
        except Exception as exc:  # noqa: BLE001
            await self.send_json(frames.error_for(exc, ref=ref, session_id=session_id))
            return
        await self.send_json({"type": "watching", "session_id": session_id, "runs": resumed, "ref": ref})
        await self._presence()

    async def _resume(self, session_id: str, after: dict) -> list[str]:
        """Stream the session's live runs, and the runs `after` names (ended ones while their log is
        kept), to this socket; the ids of the runs it now streams. Run with the session's group
        joined first, so a run that starts meanwhile is announced or found here (or both)."""
        for run_id, log_ref in (await watch.resumable(self.caller.pk, session_id, after)).items():
            if run_id not in self.streams.runs:
                self.streams.follow(log_ref, after.get(run_id, after.get("*", -1)), own=False)
        return self.streams.in_session(session_id)

    async def _presence(self) -> None:
        if self.fanout.session is not None:
            await self._send_text(frames.dumps({"type": "presence", "session_id": self.fanout.session,
                                                "sockets": len(self.fanout.peers) + 1}))

    async def _send_text(self, text: str) -> None:
        if not self.closed:
            await self.send(text_data=text)

    # -- messages from the channel layer (other sockets of the same user) --------------------

    async def run_live(self, message: dict) -> None:
        """A run of the user's started in the session this socket watches (on any worker)."""
        run_id = message.get("run_id")
        after = message.get("after", -1)  # a continuation: the events after its paused part's
        if message.get("session_id") != self.fanout.session or self.streams.streamed_from(run_id, after) or self.closed:
            return
        log_ref = await eventlog.lookup(run_id)
        if (watch.is_theirs(log_ref, self.caller.pk, self.fanout.session)
                and not self.streams.streamed_from(run_id, after) and not self.closed):
            self.streams.follow(log_ref, after, own=False)

    async def presence_join(self, message: dict) -> None:
        if self.fanout.peer_joined(message):
            await self.fanout.greet(message["from"])
            await self._presence()

    async def presence_here(self, message: dict) -> None:
        if self.fanout.peer_here(message):
            await self._presence()

    async def presence_leave(self, message: dict) -> None:
        if self.fanout.peer_left(message):
            await self._presence()

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if not self.gone.done():
            self.gone.set_result(None)
        if self.quota_user is not None:
            user, self.quota_user = self.quota_user, None
            await limits.quota.release(user, self.channel_name)
        if self.counted:
            self.counted = False
            prom.websocket_closed()
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        cancel = settings.CIRKELLINE_ON_DISCONNECT == "cancel"
        # The runs go on; their logs are there for a reconnect to resume.
        for run_id, following in self.streams.stop():
            if cancel and following.own:
                handle = runs.live_run(run_id)
                if handle is not None:
                    handle.abort(RunStatus.CANCELLED)
        try:
            if self._grouped is not None:
                await self.channel_layer.group_discard(self._grouped, self.channel_name)
            await self.fanout.leave()
        except Exception:  # noqa: BLE001
            logger.exception("could not leave the session group")
