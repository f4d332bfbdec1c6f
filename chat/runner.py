"""The run service: one async core that every transport (SSE, JSON, websocket) uses.

    handle = await start_run(RunRequest(...))    # checks the session, starts the run task
    async for event in handle.events(): ...       # agno events, then exactly one terminal event
    result = await handle.wait()                  # the outcome, for non-streaming callers
    handle.abort("cancelled")                     # cancel endpoint / client disconnect

Each run executes in a task of its own, apart from the request that started it, so:
- a client that disconnects cannot interrupt the run's bookkeeping: the transport calls
  `abort`, the run task stops agno, and still writes its rows;
- cancel and the run deadline stop *everything* the run started: agno's cooperative cancel
  flag is set, and every task spawned inside the run (member runs, tool calls, provider
  streams) is cancelled, which closes provider connections;
- every run ends with exactly one terminal event and exactly one `RunUsage` row, written in
  the same transaction as agno's session and run rows (see chat.storage).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agno.run.cancel import cancel_run as agno_cancel_run
from agno.run.team import RunCancelledEvent, RunErrorEvent, TeamRunOutput
from django.conf import settings
from django.db import transaction

from metrics.models import RunStatus
from metrics.recording import record_run_usage

from .accounting import RunAccount
from .context import RunContext, current_run
from .coordination import coordinator
from .errors import AdmissionRefused, RunAlreadyEnded, RunNotFound
from .events import ContentDiscarded
from .memory import release_when_idle
from .models import ChatRun
from .payload import storable
from .providers import RATE_LIMIT_STATUS, model_spec
from .storage import buffer
from .storage.executor import run_db
from .team import (
    CIRKELLINE_TEAM_ID,
    media_for_agno,
    prototype,
    run_deadline,
    team_for_run,
)
from .tracking import install_task_tracking

logger = logging.getLogger(__name__)

# How long finalisation may wait for agno's own cleanup tasks and for the database.
CLEANUP_GRACE = 2.0
FLUSH_TIMEOUT = 15.0

ERROR_MESSAGES = {
    "timeout": "The run took longer than its deadline and was stopped.",
    "first_token": "The AI provider did not start answering in time, so the run was stopped.",
    "rate_limited": "The AI provider is rate limiting requests right now. Please try again shortly.",
    "provider_error": "The AI provider failed to answer. Please try again.",
    "internal": "Something went wrong while running your request.",
}


@dataclass
class Attachment:
    """A file sent with a message; `kind` is image, audio, video or document."""

    kind: str
    name: str
    mime_type: str
    content: bytes


@dataclass
class RunRequest:
    user_id: int
    message: str
    team_id: str = CIRKELLINE_TEAM_ID
    session_id: str | None = None
    deep_research: bool = False
    session_state: dict | None = None
    dependencies: dict | None = None
    metadata: dict | None = None
    attachments: list[Attachment] = field(default_factory=list)
    # False: forward only content deltas, member events and the terminal event.
    stream_events: bool = True
    # How the client consumes the run (recorded on the usage row).
    streamed: bool = True
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class RunResult:
    run_id: str
    session_id: str
    status: str  # metrics.models.RunStatus value
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None
    output: TeamRunOutput | None = None
    terminal: Any = None
    content: str = ""
    # The run ended but its rows could not be written (the database is unavailable) ...
    storage_failed: bool = False
    # ... or were refused by the database (not retried; only the usage row was written).
    storage_refused: bool = False

    def output_dict(self) -> dict:
        """The run as AgentOS returns it for stream=false (TeamRunOutput.to_dict())."""
        if self.output is not None:
            data = self.output.to_dict()
        else:
            data = {"run_id": self.run_id, "session_id": self.session_id, "team_id": CIRKELLINE_TEAM_ID,
                    "content": self.content}
        data["status"] = _AGNO_STATUS[self.status]
        if self.error_type:
            data["error_type"] = self.error_type
            data["content"] = self.message
        return data


_AGNO_STATUS = {
    RunStatus.COMPLETED: "COMPLETED",
    RunStatus.CANCELLED: "CANCELLED",
    RunStatus.ERROR: "ERROR",
    RunStatus.RATE_LIMITED: "ERROR",
    RunStatus.TIMED_OUT: "ERROR",
}

_END = object()


# --- the handle --------------------------------------------------------------------------


class RunHandle:
    """A live run: its events, its outcome, and the way to stop it."""

    def __init__(self, request: RunRequest, session_id: str, ctx: RunContext, account: RunAccount):
        self.request = request
        self.run_id = request.run_id
        self.user_id = request.user_id
        self.team_id = request.team_id
        self.session_id = session_id
        self.ctx = ctx
        self.account = account
        self.started_at = datetime.now(UTC)
        self.abort_reason: str | None = None
        self.result: RunResult | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._done = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._finalizing = False

    @property
    def is_finished(self) -> bool:
        return self._done.is_set()

    @property
    def status(self) -> str:
        return self.result.status if self.result else "running"

    async def events(self) -> AsyncIterator[Any]:
        """The run's events as they happen; the last one is its terminal event.

        Consume them from one place only (each event is delivered once).
        """
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            yield item

    async def event_batches(self, limit: int = 256) -> AsyncIterator[list[Any]]:
        """Like `events()`, but each step yields every event already waiting (at least one).

        A transport writes a batch in one go: under load that is one socket write for many
        events instead of one each.
        """
        queue = self._queue
        while True:
            item = await queue.get()
            if item is _END:
                return
            batch = [item]
            while len(batch) < limit and not queue.empty():
                item = queue.get_nowait()
                if item is _END:
                    yield batch
                    return
                batch.append(item)
            yield batch

    async def wait(self) -> RunResult:
        await self._done.wait()
        assert self.result is not None
        return self.result

    def abort(self, reason: str = RunStatus.CANCELLED) -> bool:
        """Stop the run (cancel, disconnect, deadline). False if it was already ending."""
        if self.abort_reason is not None or self._finalizing or self._task is None or self._task.done():
            return False
        self.abort_reason = reason
        self.ctx.stopping = True
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        agno_cancel_run(self.run_id)  # cooperative: member runs check it between chunks
        current = asyncio.current_task()
        for task in list(self.ctx.tasks or ()):
            if task is not current and not task.done() and task is not self._task:
                task.cancel()
        # Called from inside the run task itself (a provider deadline in the leader's call), the
        # error being raised there ends the run; cancelling the running task would instead fire
        # at its next await, wherever that is.
        if current is not self._task:
            self._task.cancel()
        return True

    def _publish(self, event: Any) -> None:
        self._queue.put_nowait(event)


# --- the registry of live runs (per process) ------------------------------------------------

_live: dict[str, RunHandle] = {}
# Runs admitted but not yet registered (between admission and the end of start_run), per user.
_starting: dict[int, int] = {}


def live_run(run_id: str) -> RunHandle | None:
    return _live.get(run_id)


def live_runs_of(user_id: int) -> list[RunHandle]:
    return [h for h in _live.values() if h.user_id == user_id]


def _cancel_local(run_id: str) -> None:
    """A cancel published by another process (chat.coordination)."""
    handle = _live.get(run_id)
    if handle is not None:
        handle.abort(RunStatus.CANCELLED)


# --- starting, cancelling, looking up ------------------------------------------------------


async def start_run(request: RunRequest) -> RunHandle:
    """Admit the run, claim its session for the user, and start the run.

    `request.team_id` is a resolved team id (chat.team.resolve_team: the transport resolved it).
    Raises AdmissionRefused, or SessionNotFound when the session is someone else's (then nothing
    has run and the admission slot is given back).
    """
    loop = asyncio.get_running_loop()
    install_task_tracking(loop)
    coord = coordinator()
    coord.ensure_listener(_cancel_local)
    timeout = run_deadline(request.deep_research)

    # Count this run as starting before the first await, so concurrent starts see each other.
    starting = sum(_starting.values())
    user_runs = len(live_runs_of(request.user_id)) + _starting.get(request.user_id, 0)
    _starting[request.user_id] = _starting.get(request.user_id, 0) + 1
    registered = admitted = False
    try:
        refusal = await coord.admit(user_id=request.user_id, run_id=request.run_id, local_user_runs=user_runs,
                                    local_runs=len(_live) + starting, lease=timeout)
        if refusal is not None:
            raise AdmissionRefused(refusal.detail, refusal.retry_after)
        admitted = True
        is_new = request.session_id is None
        session_id = request.session_id or str(uuid.uuid4())
        account = RunAccount(run_id=request.run_id)
        ctx = RunContext(run_id=request.run_id, user_id=request.user_id)
        # Claimed before any model call: from here on the id is this user's, so another user's
        # run with it is refused above, and this run's final write cannot fail on ownership.
        await buffer.claim_session(ctx, session_id, request.user_id, is_new=is_new, team_id=request.team_id,
                                    first_message=request.message)
        ctx.deadline = time.monotonic() + timeout

        handle = RunHandle(request, session_id, ctx, account)
        ctx.abort = handle.abort
        _live[handle.run_id] = handle
        registered = True
    finally:
        _starting[request.user_id] -= 1
        if not _starting[request.user_id]:
            del _starting[request.user_id]
        if admitted and not registered:
            await coord.release(user_id=request.user_id, run_id=request.run_id)
    # The run task must not be tracked as a task of the request's run (there is none).
    token = current_run.set(None)
    try:
        handle._task = loop.create_task(_drive(handle), name=f"cirkelline-run-{handle.run_id}")
    finally:
        current_run.reset(token)
    handle._deadline_timer = loop.call_later(timeout, handle.abort, RunStatus.TIMED_OUT)
    return handle


async def cancel_run(user_id: int, run_id: str) -> str:
    """Cancel the user's live run (in this process or another); its final status.

    Raises RunNotFound (not yours, or unknown) or RunAlreadyEnded.
    """
    handle = _live.get(run_id)
    if handle is not None and handle.user_id == user_id:
        if handle.abort(RunStatus.CANCELLED):
            return (await handle.wait()).status
        raise RunAlreadyEnded((await handle.wait()).status)
    if handle is None:
        coord = coordinator()
        if await coord.owner_elsewhere(run_id) == user_id:
            await coord.cancel_elsewhere(run_id)
            stored = await run_db(ChatRun.objects.for_user, user_id, run_id)
            return stored["status"].lower() if stored else RunStatus.CANCELLED
    stored = await run_db(ChatRun.objects.for_user, user_id, run_id)
    if stored is None:
        raise RunNotFound(run_id)
    raise RunAlreadyEnded(stored["status"].lower())


# --- driving a run -----------------------------------------------------------------------


_FORWARD_WITHOUT_EVENTS = frozenset({"TeamRunContent"})


def _forward(request: RunRequest, event: Any) -> bool:
    if request.stream_events:
        return True
    name = getattr(event, "event", "")
    # Member events carry agent_id; agno streams them whatever stream_events says.
    return name in _FORWARD_WITHOUT_EVENTS or getattr(event, "agent_id", None) is not None


async def _drive(handle: RunHandle) -> None:
    request, ctx, account = handle.request, handle.ctx, handle.account
    current_run.set(ctx)
    output: TeamRunOutput | None = None
    failure: BaseException | None = None
    stream = None
    try:
        team = team_for_run(request.team_id, deep_research=request.deep_research)
        stream = team.arun(
            input=request.message,
            stream=True,
            stream_events=True,
            yield_run_output=True,
            session_id=handle.session_id,
            user_id=str(request.user_id),
            run_id=handle.run_id,
            session_state=request.session_state,
            dependencies=request.dependencies,
            metadata=request.metadata,
            **media_for_agno(request.attachments),
        )
        async for item in stream:
            if isinstance(item, TeamRunOutput):
                output = item
                continue
            account.observe(item)
            if account.terminal is not None:
                continue  # agno follows TeamRunCancelled with a TeamRunCompleted: one terminal only
            if account.is_terminal(item):
                account.terminal = item
                continue  # published after the run's rows are written
            if ctx.discards:
                _publish_discards(handle)
            if _forward(request, item):
                handle._publish(item)
    except asyncio.CancelledError:
        if handle.abort_reason is None:
            raise  # not ours (event loop shutdown)
        asyncio.current_task().uncancel()
    except Exception as exc:  # agno reports run failures as events; this is a bug or a crash
        failure = exc
        logger.exception("run %s crashed", handle.run_id)
    finally:
        handle._finalizing = True
        if handle._deadline_timer is not None:
            handle._deadline_timer.cancel()
    await _finalize(handle, output, failure, stream)


def _publish_discards(handle: RunHandle) -> None:
    for notice in handle.ctx.discards:
        run_id = notice.run_id or handle.run_id
        handle.account.discard(run_id, notice.characters)
        handle._publish(ContentDiscarded(
            run_id=run_id, session_id=handle.session_id, discarded_characters=notice.characters,
            agent_id=notice.agent_id, team_id=None if notice.agent_id else handle.team_id,
        ))
    handle.ctx.discards.clear()


def _outcome(handle: RunHandle, output: TeamRunOutput | None, failure: BaseException | None) -> RunResult:
    account, ctx = handle.account, handle.ctx
    result = RunResult(run_id=handle.run_id, session_id=handle.session_id, status=RunStatus.COMPLETED,
                       output=output, content=account.partial_content)
    terminal = account.terminal
    name = getattr(terminal, "event", None)
    if handle.abort_reason == RunStatus.TIMED_OUT:
        result.status, result.error_type = RunStatus.TIMED_OUT, "timeout"
        if ctx.timeout_cause == "first_token":
            result.message = ERROR_MESSAGES["first_token"]
    elif handle.abort_reason == RunStatus.ERROR:  # its transport failed sending its events (chat.views._sse)
        result.status, result.error_type = RunStatus.ERROR, "internal"
    elif handle.abort_reason is not None or name == "TeamRunCancelled":
        result.status = RunStatus.CANCELLED
    elif failure is not None:
        result.status, result.error_type = RunStatus.ERROR, "internal"
        result.message = ERROR_MESSAGES["internal"]
    elif name == "TeamRunError":
        provider = ctx.last_provider_failure
        agno_type = getattr(terminal, "error_type", "") or ""
        if agno_type == "model_provider_error" or provider is not None:
            if provider is not None and provider.status_code in RATE_LIMIT_STATUS:
                result.status, result.error_type = RunStatus.RATE_LIMITED, "rate_limited"
                result.retry_after = provider.retry_after
            else:
                result.status, result.error_type = RunStatus.ERROR, "provider_error"
        else:
            result.status, result.error_type = RunStatus.ERROR, "internal"
    elif name != "TeamRunCompleted":
        # agno ended without saying how (e.g. a paused run): treat as a failure, visibly.
        result.status, result.error_type = RunStatus.ERROR, "internal"
    if result.error_type and not result.message:
        result.message = ERROR_MESSAGES[result.error_type]
    return result


def _terminal_event(handle: RunHandle, result: RunResult) -> Any:
    """The one terminal event clients receive."""
    terminal = handle.account.terminal
    name = getattr(terminal, "event", None)
    common = {"run_id": handle.run_id, "session_id": handle.session_id, "team_id": handle.team_id,
              "team_name": prototype(handle.team_id).name}
    if result.status == RunStatus.CANCELLED:
        if name == "TeamRunCancelled":
            return terminal
        return RunCancelledEvent(**common, reason="Run cancelled", content=result.content or None)
    if not result.error_type and name == "TeamRunCompleted":
        return terminal
    event = RunErrorEvent(**common, content=result.message or ERROR_MESSAGES["internal"],
                          error_type=result.error_type or "internal", error_id=result.error_type or "internal")
    if result.retry_after is not None:
        event.additional_data = {"retry_after": result.retry_after}
    return event


def _usage_fields(handle: RunHandle, result: RunResult, finished: datetime) -> dict:
    account, ctx = handle.account, handle.ctx
    raw_error = ""
    terminal = account.terminal
    if result.error_type:
        detail = ctx.last_provider_failure.message if ctx.last_provider_failure else getattr(terminal, "content", "")
        raw_error = storable(f"{result.message} [{detail or result.error_type}]"[:2000])
    return {
        "run_id": handle.run_id,
        "user_id": handle.user_id,
        "session_id": handle.session_id,
        "team_id": handle.team_id,
        "model": str(model_spec()),
        "status": result.status,
        "error_type": result.error_type,
        "error_message": raw_error,
        **account.tokens,
        "model_calls": account.model_calls,
        "member_runs": len(account.member_runs),
        "delegations": account.delegations,
        "retries": ctx.retries,
        "backoff_seconds": round(ctx.backoff_seconds, 3),
        "deep_research": handle.request.deep_research,
        "streamed": handle.request.streamed,
        "started_at": handle.started_at,
        "finished_at": finished,
        "duration_ms": int(account.elapsed() * 1000),
        "ttft_ms": int(account.ttft * 1000) if account.ttft is not None else None,
    }


_background: set[asyncio.Task] = set()


def _retry_later(handle: RunHandle, usage: dict) -> None:
    """Store a run whose final write failed once the database is back (never tied to a request)."""
    token = current_run.set(None)  # not one of the run's tasks: cancelling the run must not stop it
    try:
        task = asyncio.get_running_loop().create_task(flush_run_later(handle.ctx, handle.session_id, usage))
    finally:
        current_run.reset(token)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _to_completion(coro):
    """Await `coro` to its end even if this task is cancelled meanwhile (finalisation must finish)."""
    task = asyncio.ensure_future(coro)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()
            asyncio.current_task().uncancel()


def _final_write(session_dict: dict | None, session_id: str, user_pk: int, rows: list[dict],
                 usage_fields: dict | None) -> bool:
    """The run's one final transaction: its session and runs (chat.storage.buffer) and its usage
    row (metrics.recording). False if the session was deleted while the run was live. Sync."""
    with transaction.atomic():
        saved = buffer.persist(session_dict, session_id, user_pk, rows) if (session_dict or rows) else True
        if usage_fields is not None:
            record_run_usage(usage_fields)
    return saved


async def flush_run(ctx: RunContext, session_id: str, usage_fields: dict) -> None:
    """Write the run's buffered session/run rows and its usage row in one transaction."""
    session_dict, rows = buffer.take_writes(ctx)
    saved = await run_db(_final_write, session_dict, session_id, ctx.user_id, rows, usage_fields)
    if not saved:
        logger.info("run %s: session %s was deleted while the run was live; its runs were not stored, its "
                    "usage was", ctx.run_id, session_id)


async def flush_run_later(ctx: RunContext, session_id: str, usage_fields: dict) -> bool:
    """Keep retrying a failed flush (the database was down) for CIRKELLINE_FLUSH_RETRY_WINDOW.

    Every write in the flush is idempotent (upserts; the usage row is created once per run), so
    retrying after a partial success is safe. True once stored.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + settings.CIRKELLINE_FLUSH_RETRY_WINDOW
    delay = settings.CIRKELLINE_FLUSH_RETRY_INTERVAL
    while loop.time() < give_up:
        await asyncio.sleep(delay)
        try:
            await flush_run(ctx, session_id, usage_fields)
        except Exception as exc:  # still down
            logger.warning("run %s: database still unavailable (%s); retrying its write", ctx.run_id, exc)
            delay = min(delay * 2, 30.0)
            continue
        logger.info("run %s: stored after the database came back", ctx.run_id)
        return True
    logger.error("run %s: gave up storing the run and its usage after %.0f s; usage=%s", ctx.run_id,
                 settings.CIRKELLINE_FLUSH_RETRY_WINDOW, usage_fields)
    return False


STORAGE_MESSAGES = {
    "unavailable": ("The answer was generated but could not be saved yet (the database is unavailable); it "
                    "will be added to the session history once the database is back."),
    "refused": ("The answer was generated but the database refused to store it, so it is not in the session "
                "history; its usage was recorded."),
}


async def _flush(handle: RunHandle, usage: dict) -> Exception | None:
    """Write the run's buffered rows and its usage row in one transaction; the error if it failed."""
    try:
        await _to_completion(asyncio.wait_for(flush_run(handle.ctx, handle.session_id, usage),
                                              FLUSH_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - the database is down, timed out, or refused the data
        handle.ctx.storage_errors.append(f"{type(exc).__name__}: {exc}")
        return exc
    return None


async def _store(handle: RunHandle, usage: dict) -> bool:
    """Store the run. True if the database refused its rows (and only its usage row was written).

    The database down or slow: everything is retried in the background until it is back. The
    database refusing the data (it should not, see chat.models.storable): retrying cannot help,
    so the usage row is written alone and the run is billed all the same.
    """
    refused = False
    failure = await _flush(handle, usage)
    if failure is not None and buffer.is_refusal(failure):
        logger.error("run %s: the database refused its session/run rows (%s: %s); storing its usage alone",
                     handle.run_id, type(failure).__name__, failure)
        handle.ctx.write_buffer = None  # what was refused; the usage row has only numbers and short strings
        refused, failure = True, await _flush(handle, usage)
    if failure is not None:
        logger.error("run %s: could not store %s (%s: %s); retrying in the background", handle.run_id,
                     "its usage" if refused else "the run and its usage", type(failure).__name__, failure)
        _retry_later(handle, usage)
    return refused


async def _finalize(handle: RunHandle, output, failure, stream) -> None:
    result = _outcome(handle, output, failure)
    try:
        if stream is not None and failure is not None:
            # A crash left agno's generator suspended: close it so its cleanup runs.
            try:
                await asyncio.wait_for(stream.aclose(), CLEANUP_GRACE)
            except BaseException:  # noqa: BLE001 - best effort on an already failed run
                pass
        # agno persists an aborted run from a background task; let it land in this run's write.
        pending = [t for t in (handle.ctx.tasks or ()) if not t.done() and t is not asyncio.current_task()]
        if pending:
            await _to_completion(asyncio.wait(pending, timeout=CLEANUP_GRACE))
        usage = _usage_fields(handle, result, datetime.now(UTC))
        # The stored run says what the usage row says (agno stops a timed-out run as cancelled).
        handle.ctx.final_status = _AGNO_STATUS[result.status]
        refused = await _store(handle, usage)
        if handle.ctx.storage_errors:
            result.storage_failed, result.storage_refused = True, refused
            if result.status == RunStatus.COMPLETED:
                result.error_type = "internal"
                result.message = STORAGE_MESSAGES["refused" if refused else "unavailable"]
        result.terminal = _terminal_event(handle, result)
    except BaseException as exc:  # noqa: BLE001 - never leave a client without a terminal event
        logger.exception("run %s: finalisation failed", handle.run_id)
        result.status, result.error_type, result.message = RunStatus.ERROR, "internal", ERROR_MESSAGES["internal"]
        result.terminal = _terminal_event(handle, result)
        if not isinstance(exc, Exception):
            raise
    finally:
        handle.result = result
        # Free the run's admission slot before the client hears the run ended, so its next
        # message is never refused for a run that is already over.
        _live.pop(handle.run_id, None)
        if not _live:
            release_when_idle(lambda: not _live)
        try:
            await _to_completion(coordinator().release(user_id=handle.user_id, run_id=handle.run_id))
        finally:
            if result.terminal is not None:
                handle._publish(result.terminal)
            handle._publish(_END)
            handle._done.set()
