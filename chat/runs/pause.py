"""Runs that wait for their user (human in the loop): continuing a paused run, expiring one.

A run pauses when its leader asks its user something (chat.agents.hitl: agno's `get_user_input`
fields, or a tool that needs confirmation). It ends like any run (chat.runs.finalize): agno's
`TeamRunPaused` as its terminal event, its run row PAUSED (agno's payload: messages and
requirements), its usage row `paused` with its tokens and cost so far, its admission slot freed.
Nothing of it stays in any process's memory, so any worker can continue it:

    handle = await continue_run(ContinueRequest(...))   # checks, admits, claims, starts the task
    # then exactly as a new run: handle.events() / handle.log / handle.wait()

The continuation is the same run (same run id, the same usage row: `paused` -> `running` -> its
terminal status, tokens and cost of both parts added; docs/COST.md). It is admitted and checked
against the budget as a new run is, and its events continue the run's event log numbering from
where the pause left it. A run paused longer than CIRKELLINE_PAUSE_TTL_SECONDS is expired
(`expire_if_stale`, at the first continue or run lookup that sees it, or by every process's
reaper sweep: chat.storage.paused.expire_stale): usage `expired`, run
CANCELLED; continuing it is a 409 saying so.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from chat.agents.hitl import bind_answers
from chat.context import RunContext, WriteBuffer
from chat.errors import AdmissionRefused, BadRequest, BudgetExceeded, RunNotFound, RunNotPaused
from chat.models import validate_session_id
from chat.observability import hooks
from chat.payload import load_json
from chat.storage import buffer
from chat.storage.executor import run_db
from chat.storage.paused import claim_continuation, expire_run, expire_stale, load_paused
from metrics.budgets import budget_refusal
from metrics.models import RunStatus

from . import eventlog
from .accounting import TOKEN_FIELDS, RunAccount
from .admission import coordinator
from .drain import refuse_if_draining
from .handle import RunHandle, live_run, live_run_count, live_runs_of, register
from .request import RunRequest
from .request import _bool as bool_field
from .revocation import cancel_local
from .service import launch, run_deadline
from .teams import team_name
from .tracking import install_task_tracking
from .worker import worker_id


@dataclass
class ContinueRequest:
    """A paused run to continue: whose, which, with what answers (`requirements` as the client sent
    them: chat.agents.hitl.bind_answers), how the client reads it."""

    user_id: int
    team_id: str
    run_id: str
    requirements: object
    session_id: str | None = None
    stream_events: bool = True
    streamed: bool = True
    username: str = ""


def is_stale(paused_at, now) -> bool:
    return paused_at is not None and now - paused_at > timedelta(seconds=settings.CIRKELLINE_PAUSE_TTL_SECONDS)


async def expire_if_stale(user_id: int, stored: dict) -> bool:
    """Expire the user's paused run `stored` (load_paused) if it waited longer than the pause TTL."""
    now = timezone.now()
    if stored.get("usage_status") != RunStatus.PAUSED or not is_stale(stored.get("paused_at"), now):
        return False
    return await run_db(expire_run, user_id, stored["run_id"], now)


async def expire_run_if_stale(user_id: int, run_id: str) -> bool:
    """Expire the user's paused run `run_id` if it waited past the pause TTL (a lookup of it)."""
    stored = await run_db(load_paused, user_id, run_id)
    return stored is not None and await expire_if_stale(user_id, stored)


async def expire_stale_runs() -> int:
    """Expire every paused run past the pause TTL (every process's reaper sweep does it, and
    `manage.py expire_paused_runs`); how many were."""
    return await run_db(expire_stale, timezone.now(), settings.CIRKELLINE_PAUSE_TTL_SECONDS)


async def continue_run(request: ContinueRequest) -> RunHandle:
    """Continue the user's paused run with their answers; its handle, as `start_run` returns one.

    Raises RunNotFound (not theirs, not a team run of `team_id`, another session), RunNotPaused
    (409: running, ended, or expired now), BadRequest (answers that do not fit its requirements),
    AdmissionRefused, BudgetExceeded.
    """
    refuse_if_draining()
    stored = await run_db(load_paused, request.user_id, request.run_id)
    payload = (stored or {}).get("payload") or {}
    if (stored is None or stored.get("parent_run_id") or payload.get("agent_id")
            or payload.get("team_id") not in (None, request.team_id)
            or request.session_id not in (None, stored["session__session_id"])):
        raise RunNotFound(request.run_id)
    if live_run(request.run_id) is not None or stored["status"] == "RUNNING":
        raise RunNotPaused("running")
    if stored["status"] != "PAUSED" or stored["usage_status"] != RunStatus.PAUSED:
        raise RunNotPaused(stored["usage_status"] or str(stored["status"]).lower())
    if await expire_if_stale(request.user_id, stored):
        raise RunNotPaused(RunStatus.EXPIRED)
    requirements = bind_answers(payload.get("requirements") or [], request.requirements)

    loop = asyncio.get_running_loop()
    install_task_tracking(loop)
    coord = coordinator()
    coord.ensure_listener(cancel_local)
    deep_research = stored["deep_research"]
    timeout = run_deadline(deep_research)
    refusal = await coord.admit(user_id=request.user_id, run_id=request.run_id,
                                local_user_runs=len(live_runs_of(request.user_id)), local_runs=live_run_count(),
                                lease=timeout)
    if refusal is not None:
        hooks.admission_refused(scope=refusal.scope, user_id=request.user_id, retry_after=refusal.retry_after,
                                limit=refusal.limit)
        raise AdmissionRefused(refusal.detail, refusal.retry_after)
    registered = False
    try:
        over_budget = await run_db(budget_refusal, request.user_id, timezone.now())
        if over_budget is not None:
            hooks.admission_refused(scope="budget", user_id=request.user_id, retry_after=0)
            raise BudgetExceeded(over_budget)
        session_id = stored["session__session_id"]
        claimed = await run_db(claim_continuation, session_id, request.user_id, request.run_id, worker=worker_id(),
                               history_runs=settings.CIRKELLINE_HISTORY_RUNS)
        if claimed is None:  # another continue (or the expiry sweep) got it first
            raise RunNotPaused("running")
        record, about, prior, run_row = claimed
        ctx = RunContext(run_id=request.run_id, user_id=request.user_id)
        ctx.write_buffer = WriteBuffer()
        ctx.prefetched_session = (session_id, record)
        # Kept with the run's final status if agno stores nothing of the continuation.
        ctx.running_row = {**run_row, "status": "RUNNING"}
        ctx.profile = buffer.profile_of(about)
        ctx.deadline = time.monotonic() + timeout
        message = (payload.get("input") or {}).get("input_content")
        run_request = RunRequest(user_id=request.user_id, username=request.username, team_id=request.team_id,
                                 message=message if isinstance(message, str) else "", session_id=session_id,
                                 deep_research=deep_research, stream_events=request.stream_events,
                                 streamed=request.streamed, run_id=request.run_id)
        handle = RunHandle(run_request, session_id, ctx, _seeded_account(request.run_id, prior, ctx))
        handle.started_at = prior["started_at"]
        handle.continuation = requirements
        handle.prior = prior
        handle.index_base = int(payload["last_event_index"]) + 1 if payload.get("last_event_index") is not None else 0
        ctx.abort = handle.abort
        if request.streamed:
            await eventlog.open_for(handle, team_name=team_name(request.team_id), lifetime=timeout)
        register(handle)
        registered = True
    finally:
        if not registered:
            await coord.release(user_id=request.user_id, run_id=request.run_id)
    launch(handle, timeout, gone=False)
    return handle


def _seeded_account(run_id: str, prior: dict, ctx: RunContext) -> RunAccount:
    """The continuation's account, holding the paused part's calls already: its live ledger, final
    tokens and ledger are the whole run's (the usage row's ModelCall rows are rewritten at its end)."""
    account = RunAccount(run_id=run_id)
    for call in prior["calls"]:
        entry = account._entry(call["agent"], call["model"], call["provider"])
        entry.calls += int(call["calls"] or 0)
        entry.estimated_tokens += int(call.get("estimated_tokens") or 0)
        for name in TOKEN_FIELDS:
            entry.tokens[name] += int(call["tokens"].get(name) or 0)
        if call.get("provider_cost") is not None:
            key = (call["agent"], call["model"], call["provider"])
            ctx.provider_costs[key] = ctx.provider_costs.get(key, Decimal(0)) + Decimal(call["provider_cost"])
    for name in TOKEN_FIELDS:
        account.tokens[name] = int(prior.get(name) or 0)
    account.model_calls = int(prior.get("model_calls") or 0)
    account.delegations = int(prior.get("delegations") or 0)
    account.estimated_tokens = int(prior.get("estimated_tokens") or 0)
    return account


def continue_request_from_fields(data: dict, *, user_pk: int, username: str, team_id: str,
                                 run_id: str) -> ContinueRequest:
    """A continue request in fields any transport decoded (AgentOS's form fields: `requirements`, a
    JSON array, as a string in a form; `session_id`, `user_id`, `stream`, `stream_events`), checked."""
    requirements = data.get("requirements")
    if isinstance(requirements, str):
        requirements = load_json(requirements, "'requirements'",
                                 invalid="'requirements' must be a JSON array; it is not valid JSON.")
    if not isinstance(requirements, list):
        raise BadRequest(400, "'requirements' is required: the run's requirements (from its TeamRunPaused "
                              "event) as a JSON array, answered.")
    user_id = data.get("user_id")
    if user_id not in (None, "") and str(user_id) not in (str(user_pk), username):
        raise BadRequest(403, "'user_id' must be your own: the run always belongs to the authenticated user.")
    session_id = data.get("session_id") or None
    if session_id is not None:
        if not isinstance(session_id, str):
            raise BadRequest(400, "'session_id' must be a string.")
        validate_session_id(session_id)
    if bool_field("background", data.get("background"), False):
        raise BadRequest(400, "Background runs are not supported: stream the run or wait for its result.")
    return ContinueRequest(user_id=user_pk, username=username, team_id=team_id, run_id=run_id,
                           requirements=requirements, session_id=session_id,
                           stream_events=bool_field("stream_events", data.get("stream_events"), True),
                           streamed=bool_field("stream", data.get("stream"), True))
