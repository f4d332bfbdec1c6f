"""Starting and cancelling runs: the run service's entry points, the same for every transport (SSE,
JSON, websocket).

    handle = await start_run(RunRequest(...))    # admits it, claims the session, starts the run task
    async for event in handle.events(): ...       # agno events, then exactly one terminal event
    result = await handle.wait()                  # the outcome, for non-streaming callers
    handle.abort("cancelled")                     # cancel endpoint (and a client gone, if so configured)

A streamed run also has an event log (chat.runs.eventlog), opened here before its task starts:
transports read that, on this worker or any other.

Each run executes in a task of its own, apart from the request that started it, so:
- a client that disconnects cannot interrupt the run's bookkeeping: the transport calls
  `abort`, the run task stops agno, and still writes its rows;
- cancel and the run deadline stop *everything* the run started: agno's cooperative cancel
  flag is set, and every task spawned inside the run (member runs, tool calls, provider
  streams) is cancelled, which closes provider connections;
- every run is on record from its admission: its session claim's transaction also stores the
  run's own row (the user's message, status RUNNING) and its usage row (status running, owned by
  this worker: chat.runs.worker), so another process can answer for it and, if this one dies,
  close it (chat.runs.reaper);
- every run ends with exactly one terminal event and exactly one `RunUsage` row, given its
  terminal status in the same transaction as agno's session and run rows (chat.runs.finalize).
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

from chat.agents.providers import model_spec
from chat.context import RunContext, current_run
from chat.errors import AdmissionRefused, BudgetExceeded, RunAlreadyEnded, RunNotFound, RunUnreachable
from chat.models import RUNNING_STATUS as RUNNING
from chat.models import ChatRun
from chat.observability import hooks
from chat.observability.request_id import current_request_id
from chat.records import running_run_row
from chat.storage import buffer
from chat.storage.executor import run_db
from chat.storage.paused import expire_run
from metrics.budgets import budget_refusal
from metrics.models import RunStatus

from . import eventlog, reaper
from .accounting import RunAccount
from .admission import coordinator
from .drain import refuse_if_draining
from .drive import drive
from .handle import RunHandle, announce_live, live_run, live_run_count, live_runs_of, register
from .request import RunRequest
from .revocation import cancel_local
from .teams import team_name
from .tracking import install_task_tracking
from .worker import worker_id

# Runs admitted but not yet registered (between admission and the end of start_run), per user.
_starting: dict[int, int] = {}


def starting_run_count() -> int:
    """Runs admitted but not yet live (their session is being claimed)."""
    return sum(_starting.values())


def run_deadline(deep_research: bool) -> float:
    """Seconds a run may take (CIRKELLINE_RUN_TIMEOUT, or CIRKELLINE_DEEP_RESEARCH_TIMEOUT)."""
    return settings.CIRKELLINE_DEEP_RESEARCH_TIMEOUT if deep_research else settings.CIRKELLINE_RUN_TIMEOUT


async def start_run(request: RunRequest) -> RunHandle:
    """Check the user's budget, admit the run, claim its session for the user, and start the run.

    `request.team_id` is a resolved team id (chat.agents.team.resolve_team: the transport resolved it).
    Raises ServerDraining (this process is shutting down: chat.runs.drain), AdmissionRefused,
    BudgetExceeded (the month's spend is at or over the user's budget:
    nothing is written and the admission slot is given back), or SessionNotFound when the session is
    someone else's (then nothing has run and the admission slot is given back).
    """
    refuse_if_draining()  # a process shutting down starts nothing (ServerDraining, 503)
    loop = asyncio.get_running_loop()
    install_task_tracking(loop)
    coord = coordinator()
    coord.ensure_listener(cancel_local)  # cancels and revocations published by other processes
    timeout = run_deadline(request.deep_research)

    # Count this run as starting before the first await, so concurrent starts see each other.
    starting = sum(_starting.values())
    user_runs = len(live_runs_of(request.user_id)) + _starting.get(request.user_id, 0)
    _starting[request.user_id] = _starting.get(request.user_id, 0) + 1
    registered = admitted = False
    try:
        refusal = await coord.admit(user_id=request.user_id, run_id=request.run_id, local_user_runs=user_runs,
                                    local_runs=live_run_count() + starting, lease=timeout)
        if refusal is not None and refusal.scope == "user" and await reaper.close_orphans_of(request.user_id):
            # Some of the slots were held by runs of a dead worker (lease expired, not swept yet):
            # closed now, which gave their slots back; the user is not refused for runs that are over.
            refusal = await coord.admit(user_id=request.user_id, run_id=request.run_id, local_user_runs=user_runs,
                                        local_runs=live_run_count() + starting, lease=timeout)
        if refusal is not None:
            hooks.admission_refused(scope=refusal.scope, user_id=request.user_id, retry_after=refusal.retry_after,
                                    limit=refusal.limit)
            raise AdmissionRefused(refusal.detail, refusal.retry_after)
        admitted = True
        is_new = request.session_id is None
        session_id = request.session_id or str(uuid.uuid4())
        account = RunAccount(run_id=request.run_id)
        ctx = RunContext(run_id=request.run_id, user_id=request.user_id)
        started_at = datetime.now(UTC)
        # Claimed before any model call: from here on the id is this user's, so another user's
        # run with it is refused above, and this run's final write cannot fail on ownership. The
        # run is on record from the same transaction on (its own row and its running usage row).
        # First, in the same hand-off to the database thread, the budget: one indexed query (the
        # budget and the month's spend together; no row when the user has no budget), after
        # admission, so it counts every run of the user that holds no slot: at most
        # CIRKELLINE_MAX_RUNS_PER_USER runs can go past the budget (docs/COST.md). Over budget,
        # nothing is claimed or written.
        claim = asyncio.ensure_future(buffer.claim_session(
            ctx, session_id, request.user_id, is_new=is_new, team_id=request.team_id, first_message=request.message,
            run_row=running_run_row(run_id=request.run_id, session_id=session_id, team_id=request.team_id,
                                    team_name=team_name(request.team_id), user_pk=request.user_id,
                                    message=request.message, created_at=started_at),
            usage=_running_usage(request, session_id, started_at),
            precheck=functools.partial(budget_refusal, request.user_id, timezone.now())))
        gone = await _outlast(claim)
        over_budget = claim.result()
        if over_budget is not None:
            hooks.admission_refused(scope="budget", user_id=request.user_id, retry_after=0)
            if gone:
                raise asyncio.CancelledError
            raise BudgetExceeded(over_budget)
        ctx.deadline = time.monotonic() + timeout

        handle = RunHandle(request, session_id, ctx, account)
        handle.started_at = started_at
        ctx.abort = handle.abort
        if request.streamed:
            # As AgentOS: a run answered with stream=false has no event stream (nothing to resume).
            await eventlog.open_for(handle, team_name=team_name(request.team_id), lifetime=timeout)
        register(handle)
        registered = True
    finally:
        _starting[request.user_id] -= 1
        if not _starting[request.user_id]:
            del _starting[request.user_id]
        if admitted and not registered:
            await coord.release(user_id=request.user_id, run_id=request.run_id)
    launch(handle, timeout, gone)
    return handle


def launch(handle: RunHandle, timeout: float, gone: bool) -> None:
    """Start a registered run's task and its deadline (a new run, or a paused run's continuation)."""
    loop = asyncio.get_running_loop()
    # The run task must not be tracked as a task of the request's run (there is none).
    token = current_run.set(None)
    try:
        handle._task = loop.create_task(drive(handle), name=f"cirkelline-run-{handle.run_id}")
    finally:
        current_run.reset(token)
    handle._deadline_timer = loop.call_later(timeout, handle.abort, RunStatus.TIMED_OUT)
    if gone:
        # The request was cancelled while the run was being put on record: the run is stopped as
        # soon as its task has started (call_soon runs after the task's first step; a task
        # cancelled before that would never run its finalisation), and so ends like any
        # cancelled run, with its rows: a row never stays `running`.
        loop.call_soon(handle.abort, RunStatus.CANCELLED)
        raise asyncio.CancelledError
    if handle.request.streamed:
        announce_live(handle)


def _running_usage(request: RunRequest, session_id: str, started_at: datetime) -> dict:
    """The usage row of the run as it is admitted (metrics.recording.record_running)."""
    return {"run_id": request.run_id, "user_id": request.user_id, "username": request.username,
            "session_id": session_id,
            "request_id": current_request_id() or "", "team_id": request.team_id, "model": str(model_spec()),
            "deep_research": request.deep_research, "streamed": request.streamed, "started_at": started_at,
            "worker": worker_id()}


async def _outlast(task: asyncio.Future) -> bool:
    """Await `task` to its end even if the caller is cancelled meanwhile (its database write goes
    on in a thread either way); its exception, if any, is raised. True if the caller was cancelled."""
    cancelled = False
    while True:
        try:
            await asyncio.shield(task)
            return cancelled
        except asyncio.CancelledError:
            if task.done():
                task.result()  # the task's own outcome (it is never cancelled itself)
                return cancelled
            cancelled = True
            asyncio.current_task().uncancel()


async def cancel_run(user_id: int, run_id: str) -> str:
    """Cancel the user's live run (in this process or another); its final status.

    Raises RunNotFound (not yours, or unknown) or RunAlreadyEnded.
    """
    handle = live_run(run_id)
    if handle is not None and handle.user_id == user_id:
        if handle.abort(RunStatus.CANCELLED):
            return (await handle.wait()).status
        raise RunAlreadyEnded((await handle.wait()).status)
    if handle is None:
        coord = coordinator()
        if await coord.owner_elsewhere(run_id) == user_id:
            # Its worker may be dead (its lease expired): nobody would answer the cancel, so the
            # run is closed here and now (worker_lost), its slot freed.
            if not await reaper.close_if_orphaned(run_id) and not await coord.cancel_elsewhere(run_id):
                if not await reaper.close_if_orphaned(run_id):  # its lease may have run out meanwhile
                    raise RunUnreachable()  # its worker neither answers nor has lost its lease yet
            stored = await run_db(ChatRun.objects.find, user_id, run_id)
            return _usage_status(stored)
    stored = await run_db(ChatRun.objects.find, user_id, run_id)
    if stored is None:
        raise RunNotFound(run_id)
    if stored["status"] == "PAUSED" and await run_db(expire_run, user_id, run_id, timezone.now(), cancelled=True):
        return RunStatus.CANCELLED  # it waited for its user, who cancels it instead of answering
    if stored["status"] == RUNNING:
        if await reaper.close_if_orphaned(run_id):  # its worker is gone
            return _usage_status(await run_db(ChatRun.objects.find, user_id, run_id))
        raise RunUnreachable()  # in another process, and no Redis to reach it through
    raise RunAlreadyEnded(stored["status"].lower())


def _usage_status(stored: dict | None) -> str:
    """An ended run's status as the cancel route says it (cancelled; error for a run closed because
    its worker died)."""
    return stored["status"].lower() if stored else RunStatus.CANCELLED
