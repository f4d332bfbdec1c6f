"""The chat websocket consumer: who is on the socket, its client frames, its runs' events.

A transport like the HTTP views: it authenticates, parses with the run API's own checks
(`chat.runs.request.run_request_from_fields`), and calls the run service (`runs.start_run`,
`runs.cancel_run`, `RunHandle.abort`); it never runs agno or writes rows itself.

- Who: the Django session cookie (the pages; Channels' AuthMiddlewareStack), or a JWT in the
  `Sec-WebSocket-Protocol` header (`bearer, <token>`; the server answers `bearer`) or in a first
  frame `{"type": "auth", "token": ...}`. Never the query string (it ends up in logs). A socket
  with none of these is closed with 4401 after an error frame saying why. The credentials are
  checked again before every run, so an expired token or an ended login refuses new runs.
- Frames are handled one at a time, so every run streams from a task of its own (`_pump`, reading
  the run's event log: chat.runs.eventlog), and `cancel` runs in a task too: a cancel takes
  effect while runs stream, and several runs share a socket. Closing the socket leaves the runs
  it started going (they can be resumed), unless CIRKELLINE_ON_DISCONNECT is `cancel`.
- `watch`: the socket follows every live run of the user's in the session, on any worker and
  started by any transport, replayed from its start (or after the `seq` the client names) then
  live. Runs started later reach it through a notice on the session's group (chat.ws.fanout).
- A session renamed (by the user, or named by the model) reaches all of the user's sockets
  (chat.ws.notices).
- A process that drains (SIGTERM: chat.runs.drain) refuses `run` frames (a 503 error frame,
  `code` "draining"), lets its runs finish, then closes every socket with 1012 (service restart):
  the page reconnects, to another process, and resumes.
- Limits (chat.ws.limits): frame size (tight before authentication; 1009), frames per second
  (an error frame, then 1008), sockets per user (4429). A large frame is parsed off the loop.

The protocol (frames, close codes, errors) is documented in docs/API.md.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from types import SimpleNamespace
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user
from django.contrib.sessions.backends.base import SessionBase
from django.utils.module_loading import import_string

from chat import runs
from chat.agents.team import CIRKELLINE_TEAM_ID, resolve_team
from chat.errors import AuthError, BadRequest, SessionNotFound
from chat.identity import Caller, caller_from_token
from chat.models import ChatSession, validate_session_id
from chat.observability import prom, request_id
from chat.payload import load_json, parse
from chat.runs import drain, eventlog, uploads
from chat.runs.request import run_request_from_fields
from chat.storage.executor import run_db
from metrics.models import RunStatus

from . import frames, limits, notices, revocation
from .fanout import Fanout, group_name
from .revocation import user_group

logger = logging.getLogger(__name__)

# Seconds a socket without credentials may take to send its `auth` frame.
AUTH_TIMEOUT = 10.0
# Seconds a drained process waits for its sockets' clients to answer their 1012 close.
CLOSE_WAIT = 3.0
STREAMED_RUNS = 256
# Fields of a `run` frame handed to the run API's checks (the rest of a frame is ignored).
RUN_FIELDS = ("message", "session_id", "deep_research", "session_state", "dependencies", "metadata",
              "stream_events", "user_id")
# Fields of a `continue` frame handed to the continue checks (chat.runs.pause).
CONTINUE_FIELDS = ("requirements", "session_id", "stream_events", "user_id")
_tasks: set[asyncio.Task] = set()


def _after_map(after: Any) -> dict[str, int]:
    """`watch`'s `after`: {run id: last seq received}, or one seq for every run ("*")."""
    if after is None:
        return {}
    if isinstance(after, int) and not isinstance(after, bool):
        after = {"*": after}
    if not isinstance(after, dict) or len(after) > 100:
        raise BadRequest(400, "'after' must be an object mapping run ids to the last seq received, or an integer.")
    for key, value in after.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < -1:
            raise BadRequest(400, "'after' values must be integers of -1 or more.")
        if key != "*":
            validate_session_id(key)
    return after


def _spawn(coro: Any, name: str) -> asyncio.Task:
    """A task that outlives the frame (and the socket) that started it, kept referenced."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def _announce(handle: runs.RunHandle) -> None:
    """Tell the owner's sockets watching the run's session that it started (any transport)."""
    if handle.request.session_id is None:
        return  # a new session: its id was generated now, nobody can be watching it yet
    layer = get_channel_layer()
    if layer is None:
        return
    # `after`: a paused run's continuation is announced with the index its events follow.
    message = {"type": "run.live", "run_id": handle.run_id, "session_id": handle.session_id,
               "after": handle.index_base - 1}
    _spawn(_send_notice(layer, group_name(handle.user_id, handle.session_id), message), "ws-run-live")


async def _send_notice(layer: Any, group: str, message: dict) -> None:
    try:
        await layer.group_send(group, message)
    except Exception:  # noqa: BLE001 - watchers miss the live copy; the stored run has it all
        logger.exception("could not tell the session's sockets about run %s", message["run_id"])


runs.when_live(_announce)

# This process's open sockets, closed with 1012 when it has drained.
_sockets: weakref.WeakSet[ChatConsumer] = weakref.WeakSet()
_drained = False


async def _close_sockets() -> None:
    """The process has drained: every socket is closed with 1012 (the page reconnects elsewhere)."""
    global _drained
    _drained = True
    sockets = [socket for socket in _sockets if not socket.closed]
    if sockets:
        logger.warning("drained: closing %d websocket(s) with 1012", len(sockets))
    await asyncio.gather(*(socket.restart_close() for socket in sockets), return_exceptions=True)
    # The close frames go out from Daphne's side, and the process stops right after this: wait
    # (briefly) for the clients' answers, so every page gets its 1012 rather than a dropped line.
    gone = [socket.gone for socket in sockets if not socket.gone.done()]
    if gone:
        await asyncio.wait(gone, timeout=CLOSE_WAIT)


drain.when_drained(_close_sockets)


class _Following:
    """A run this socket streams: its frames, its pump task, and whether the socket started it."""

    __slots__ = ("frames", "task", "own")

    def __init__(self, run_frames: frames.RunFrames, own: bool):
        self.frames = run_frames
        self.task: asyncio.Task | None = None
        self.own = own


def _session_user_pk(session_key: str) -> int | None:
    """The user a Django session still logs in (None after logout, expiry or a password change)."""
    store: SessionBase = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key)
    if SESSION_KEY not in store:
        return None
    user = get_user(SimpleNamespace(session=store))  # checks the session's auth hash, like a request
    return user.pk if user.is_authenticated else None


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
        self.runs: dict[str, _Following] = {}
        # Runs this socket has streamed (the last STREAMED_RUNS): a `run.live` notice that arrives
        # after such a run ended (quick runs do) must not replay it a second time.
        self.streamed: dict[str, int] = {}  # run id -> the seq its stream here began after
        self.closed = False
        self.gone = asyncio.get_running_loop().create_future()  # done once the socket is closed
        self.bucket = limits.FrameBucket(settings.CIRKELLINE_WS_FRAMES_PER_SECOND, settings.CIRKELLINE_WS_FRAME_BURST)
        self.fanout = Fanout(self.channel_layer, self.channel_name)
        self._auth_timer: asyncio.TimerHandle | None = None
        if _drained:  # the process is about to stop: go elsewhere at once
            protocols = self.scope.get("subprotocols") or []
            await self.accept(subprotocol="bearer" if protocols[:1] == ["bearer"] else None)
            await self.restart_close()
            return
        _sockets.add(self)
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
            self._auth_timer = loop.call_later(AUTH_TIMEOUT, lambda: _spawn(self._refuse(
                "No credentials within 10 seconds: log in, or send {\"type\": \"auth\", \"token\": ...} first."),
                "ws-auth-timeout"))

    async def _ready(self, caller: Caller) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self.quota_user is None:
            if not await limits.quota.acquire(caller.pk, self.channel_name):
                limit = settings.CIRKELLINE_WS_MAX_SOCKETS_PER_USER
                await self.send_json(frames.error(
                    429, f"You have {limit} chat connections open already: close one (another tab?) first.",
                    code="too_many_sockets", limit=limit))
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
        """Before every run, watch and cancel: the token has not expired or been revoked, or the
        login session still exists (and its user is active)."""
        if self.token is not None:
            await caller_from_token(self.token)
        elif self.session_key is not None:
            if await run_db(_session_user_pk, self.session_key) != self.caller.pk:
                raise AuthError(401, "Your login has ended: log in again to send messages.")

    # -- frames from the client ------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return
        verdict = self.bucket.take()
        if verdict != "ok":
            await self._too_fast(verdict)
            return
        limit = limits.frame_limit(self.caller is not None)
        if limits.too_large(text_data or "", limit) or len(bytes_data or b"") > limit:
            await self.send_json(frames.error(413, f"The frame is too large: the limit is {limit} bytes"
                                                   f"{'' if self.caller else ' before authenticating'}.",
                                              code="too_large", limit=limit))
            await self._close(limits.CLOSE_TOO_LARGE, "frame too large")
            return
        try:
            if text_data is None:
                raise BadRequest(400, "Frames must be JSON text.")
            # strict: no NaN, NUL or lone surrogates; a large frame is parsed off the loop
            content = await parse(len(text_data), load_json, text_data, "The frame")
            if not isinstance(content, dict) or not isinstance(content.get("type"), str):
                raise BadRequest(400, "A frame must be a JSON object with a 'type'.")
        except BadRequest as exc:
            await self.send_json(frames.error_for(exc))
            return
        await self.receive_json(content)

    async def _too_fast(self, verdict: str) -> None:
        """A frame past the socket's rate (chat.ws.limits.FrameBucket): not handled."""
        rate = settings.CIRKELLINE_WS_FRAMES_PER_SECOND
        if verdict == "refuse":
            await self.send_json(frames.error(429, f"Too many frames: at most {rate:g} a second. This one was not "
                                                   "handled.", code="rate_limited",
                                              retry_after=self.bucket.retry_after()))
        elif verdict == "close":
            await self.send_json(frames.error(429, "Too many frames: the connection is closed.", code="rate_limited"))
            await self._close(limits.CLOSE_FLOODING, "too many frames")

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
            _spawn(self._cancel(content.get("run_id"), ref), "ws-cancel")
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
            fields = {name: content[name] for name in RUN_FIELDS if name in content}
            team_id = content.get("team_id") or CIRKELLINE_TEAM_ID
            request, _ = run_request_from_fields(fields, user_pk=self.caller.pk, username=self.caller.username,
                                                 team_id=str(team_id), attachments=[])
            resolve_team(request.team_id)
            request.attachments = await uploads.take(self.caller.pk, content.get("files"))
            handle = await runs.start_run(request)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes an error frame (frames.error_for)
            await self.send_json(frames.error_for(exc, ref=ref))
            return
        self._follow(eventlog.LogRef.of(handle.log), -1, own=True, ref=ref)

    async def _continue_run(self, content: dict, ref: Any) -> None:
        """A paused run of the user's, continued with their answers (`requirements`), streamed here
        from the event after its paused part's last."""
        try:
            await self._check_credentials()
            run_id = content.get("run_id")
            if not isinstance(run_id, str):
                raise BadRequest(400, "'run_id' is required.")
            try:
                validate_session_id(run_id)
            except BadRequest:
                raise BadRequest(400, "Invalid run id.") from None
            fields = {name: content[name] for name in CONTINUE_FIELDS if name in content}
            team_id = resolve_team(str(content.get("team_id") or CIRKELLINE_TEAM_ID))
            request = runs.continue_request_from_fields(fields, user_pk=self.caller.pk, username=self.caller.username,
                                                        team_id=team_id, run_id=run_id)
            request.streamed = True
            handle = await runs.continue_run(request)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes an error frame (frames.error_for)
            await self.send_json(frames.error_for(exc, ref=ref, run_id=content.get("run_id")))
            return
        self._follow(eventlog.LogRef.of(handle.log), handle.index_base - 1, own=True, ref=ref)

    def _follow(self, log_ref: eventlog.LogRef, after: int, *, own: bool, ref: Any = None) -> None:
        following = _Following(frames.RunFrames(log_ref.run_id, log_ref.meta, ref), own)
        following.frames.seq = after
        self.runs[log_ref.run_id] = following
        self.streamed[log_ref.run_id] = after
        if len(self.streamed) > STREAMED_RUNS:
            del self.streamed[next(iter(self.streamed))]
        following.task = _spawn(self._pump(following, log_ref, after), f"ws-run-{log_ref.run_id}")

    async def _cancel(self, run_id: Any, ref: Any) -> None:
        try:
            if not isinstance(run_id, str):
                raise BadRequest(400, "'run_id' is required.")
            try:
                validate_session_id(run_id)
            except BadRequest:
                raise BadRequest(400, "Invalid run id.") from None
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
            after = _after_map(after)
            if session_id is not None:
                validate_session_id(session_id)
                live = await eventlog.live_in_session(self.caller.pk, session_id)
                # A new session is stored when its first run ends; while that run is live it is
                # the user's already.
                if not live and not await run_db(ChatSession.objects.is_owned, self.caller.pk, session_id):
                    raise SessionNotFound(session_id)
            await self.fanout.watch(self.caller.pk, session_id)
            for run_id, following in list(self.runs.items()):
                if not following.own and following.frames.session_id != session_id:
                    following.task.cancel()  # a run of the session this socket no longer watches
                    self.runs.pop(run_id, None)
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
        found = {ref.run_id: ref for ref in await eventlog.live_in_session(self.caller.pk, session_id)}
        for run_id in after:
            if run_id not in found:
                log_ref = await eventlog.lookup(run_id)
                if log_ref is not None and log_ref.user_id == self.caller.pk and log_ref.session_id == session_id:
                    found[run_id] = log_ref
        for run_id, log_ref in found.items():
            if run_id not in self.runs:
                self._follow(log_ref, after.get(run_id, after.get("*", -1)), own=False)
        return [run_id for run_id, following in self.runs.items() if following.frames.session_id == session_id]

    async def _presence(self) -> None:
        if self.fanout.session is not None:
            await self._send_text(frames.dumps({"type": "presence", "session_id": self.fanout.session,
                                                "sockets": len(self.fanout.peers) + 1}))

    # -- a run's events --------------------------------------------------------------------

    async def _pump(self, following: _Following, log_ref: eventlog.LogRef, after: int) -> None:
        """Stream one run's log to this socket: run_started, its events after `after`, run_finished."""
        run = following.frames
        try:
            async with log_ref.reading() as log:
                await self._send_text(run.started(own=following.own, joined=not following.own))
                async for batch in log.follow(after):
                    await self._send_text(run.events(batch))
                await self._send_text(run.finished(log.summary))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the socket broke; the run is not this task's to stop
            logger.exception("websocket stream of run %s failed", run.run_id)
        finally:
            if self.runs.get(run.run_id) is following:
                del self.runs[run.run_id]

    async def _send_text(self, text: str) -> None:
        if not self.closed:
            await self.send(text_data=text)

    # -- messages from the channel layer (other sockets of the same user) --------------------

    async def run_live(self, message: dict) -> None:
        """A run of the user's started in the session this socket watches (on any worker)."""
        run_id = message.get("run_id")
        after = message.get("after", -1)  # a continuation: the events after its paused part's
        if message.get("session_id") != self.fanout.session or self._streamed_from(run_id, after) or self.closed:
            return
        log_ref = await eventlog.lookup(run_id)
        if (log_ref is not None and log_ref.user_id == self.caller.pk and log_ref.session_id == self.fanout.session
                and not self._streamed_from(run_id, after) and not self.closed):
            self._follow(log_ref, after, own=False)

    def _streamed_from(self, run_id: Any, after: int) -> bool:
        """Whether this socket streams (or streamed) the run's events after `after` already."""
        return run_id in self.runs or (run_id in self.streamed and self.streamed[run_id] >= after)

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
        for run_id, following in list(self.runs.items()):
            following.task.cancel()  # the run goes on; its log is there for a reconnect to resume
            if cancel and following.own:
                handle = runs.live_run(run_id)
                if handle is not None:
                    handle.abort(RunStatus.CANCELLED)
        self.runs.clear()
        try:
            if self._grouped is not None:
                await self.channel_layer.group_discard(self._grouped, self.channel_name)
            await self.fanout.leave()
        except Exception:  # noqa: BLE001
            logger.exception("could not leave the session group")
