"""Naming a session after its first answer: the model's short title, billed, within budget, told live.

A session is named after its first message when a run claims it (chat.storage.buffer). Once its
first answer is stored, the run service (chat.runs.finalize) calls `schedule_naming`, which starts
`name_session` in a task of its own, apart from the run and the request (the run's terminal event
is already out: naming never delays it):

1. one read: the session still has its first message's name (`ChatSession.named_by`; a name the
   user gave is never replaced) and exactly one answer, and the user's monthly budget is not used
   up (metrics.budgets: over budget, no call is made and the first message's name stays);
2. the call (chat.agents.naming), under a RunContext of its own (retries, the billing of a call
   cut off) and CIRKELLINE_NAMING_TIMEOUT;
3. one transaction: its usage row (`kind` naming, its own run id, the session's id; priced like a
   run's, with its ModelCall ledger: metrics.recording.record_ended) and the new name, given by a
   conditional UPDATE (`ChatSession.objects.name_by_model`, as a prepared statement:
   chat.storage.prepared, as the check in 1. is), so a rename by the user racing it wins;
   retried while the database is unavailable, as a run's final write is;
4. `chat.models.session_renamed`, which the websocket transport turns into a `session_renamed`
   frame to every socket of the user (chat.ws.notices).

A reply that is no usable title (empty, a greeting, "New chat") leaves the first message's name;
the call is billed all the same. A naming call a server process loses mid-call (killed) is not
billed: it has no row until it ends (docs/COST.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.agents.naming import ask_for_title
from chat.agents.providers import model_spec
from chat.agents.shared_clients import close_loop_clients
from chat.context import RunContext, current_run
from chat.models import ChatSession, NamedBy, session_renamed
from chat.observability.request_id import bind_run, current_request_id
from chat.storage import prepared
from chat.storage.buffer import is_refusal
from chat.storage.executor import run_db
from metrics.budgets import budget_refusal
from metrics.models import RunStatus, UsageKind
from metrics.recording import record_ended

from . import drain
from .handle import RunHandle

logger = logging.getLogger(__name__)

TOKEN_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
                "cache_write_tokens")
RATE_LIMIT_STATUS = frozenset({429, 529})

# Naming tasks of this process, kept referenced until they end.
_background: set[asyncio.Task] = set()


def pending_namings() -> int:
    """Naming calls in progress in this process."""
    return len(_background)


async def settle_namings(within: float) -> None:
    """Wait up to `within` seconds for this process's naming tasks (tests, a server shutting down)."""
    if _background:
        await asyncio.wait(list(_background), timeout=within)


async def _settled_then_clients_closed() -> None:
    """When a server drains: the naming calls of its last runs end (a few seconds at most), then
    its provider clients close their connections (chat.agents.shared_clients)."""
    await settle_namings(drain.FINISH_SECONDS / 2)
    await close_loop_clients()


drain.when_drained(_settled_then_clients_closed)


def schedule_naming(handle: RunHandle) -> asyncio.Task | None:
    """After a run ended: name its session in the background if this was the session's first
    answer. Never raises and never waits (the run's terminal event is already published)."""
    try:
        job = _job(handle)
        if job is None:
            return None
        token = current_run.set(None)  # not a task of the ended run: nothing of it may cancel this one
        try:
            task = asyncio.get_running_loop().create_task(name_session(**job),
                                                          name=f"cirkelline-naming-{handle.session_id}")
        finally:
            current_run.reset(token)
        _background.add(task)
        task.add_done_callback(_background.discard)
        return task
    except Exception:  # noqa: BLE001 - a chat keeps its first message's name; the run is not concerned
        logger.exception("run %s: could not start naming its session", handle.run_id)
        return None


def _job(handle: RunHandle) -> dict[str, Any] | None:
    """The naming of the run's session, when this run may be its first answer; else None."""
    result = handle.result
    if not settings.CIRKELLINE_AUTO_NAME_SESSIONS or result is None or result.status != RunStatus.COMPLETED:
        return None
    if result.storage_failed:  # not stored (yet): the answer is not in the session
        return None
    # A session this run created (its claim loaded nothing), or one whose history had no answer yet
    # (its first run failed or was stopped). `name_session` checks again in the database.
    prefetched = handle.ctx.prefetched_session
    if prefetched is None or (prefetched[1] is not None and prefetched[1].get("runs")):
        return None
    output = result.output
    answer = output.content if output is not None and isinstance(getattr(output, "content", None), str) \
        else result.content
    return {"user_id": handle.user_id, "username": handle.request.username, "session_id": handle.session_id,
            "team_id": handle.team_id, "first_message": handle.request.message, "answer": answer or "",
            "request_id": current_request_id() or ""}


def _may_name(user_id: int, session_id: str, now: datetime) -> bool:
    """Whether the session awaits its name and the user's budget allows the call. Sync."""
    return prepared.awaiting_name(user_id, session_id) and budget_refusal(user_id, now) is None


def _store(usage: dict[str, Any], calls: list[dict[str, Any]], title: str | None) -> bool:
    """The naming call's usage row and ledger, and the session's new name, in one transaction;
    whether the session was renamed. Sync."""
    with transaction.atomic():
        record_ended(usage, calls)
        return bool(title) and prepared.name_by_model(usage["user_id"], usage["session_id"], title)


async def _store_when_possible(usage: dict[str, Any], calls: list[dict[str, Any]], title: str | None) -> bool:
    """`_store`, retried while the database is unavailable (as a run's final write is, for
    CIRKELLINE_FLUSH_RETRY_WINDOW with the same backoff): the call was made, so it is billed once
    the database is back. Data the database refuses is not retried (it cannot help). Whether the
    session was renamed; False when the call could not be billed (logged with its numbers)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + settings.CIRKELLINE_FLUSH_RETRY_WINDOW
    delay = settings.CIRKELLINE_FLUSH_RETRY_INTERVAL
    while True:
        try:
            return await run_db(_store, usage, calls, title)
        except Exception as exc:  # noqa: BLE001 - logged below; the first message's name stays
            failure = exc
        if is_refusal(failure) or loop.time() + delay >= give_up:
            break
        logger.warning("naming call %s: database unavailable (%s); retrying its usage write", usage["run_id"],
                       failure)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
    logger.error("naming call %s for session %s: could not store its usage (%s: %s); usage=%s", usage["run_id"],
                 usage["session_id"], type(failure).__name__, failure,
                 {k: usage[k] for k in ("status", "model", "total_tokens")})
    return False


async def name_session(*, user_id: int, username: str, session_id: str, team_id: str, first_message: str,
                       answer: str, request_id: str = "") -> str | None:
    """Ask the model for the session's title, bill the call and give the session the title; the new
    name, or None (not awaiting a name, over budget, no usable title, or renamed by the user meanwhile)."""
    if not await run_db(_may_name, user_id, session_id, timezone.now()):
        return None
    run_id = str(uuid.uuid4())
    bind_run(run_id)
    timeout = settings.CIRKELLINE_NAMING_TIMEOUT
    ctx = RunContext(run_id=run_id, user_id=user_id, deadline=time.monotonic() + timeout)
    started_at, started = datetime.now(UTC), time.monotonic()
    reply, status, error_type, cancelled = None, RunStatus.COMPLETED, "", False
    token = current_run.set(ctx)
    try:
        async with asyncio.timeout(timeout):
            reply = await ask_for_title(first_message=first_message, answer=answer, run_id=run_id, user_id=user_id)
    except TimeoutError:
        status, error_type = RunStatus.TIMED_OUT, "timeout"
    except asyncio.CancelledError:  # the process is shutting down: bill what was used, then stop
        status, cancelled = RunStatus.CANCELLED, True
    except Exception:  # noqa: BLE001 - a failed naming call is billed and the first message's name stays
        logger.exception("naming call %s for session %s failed", run_id, session_id)
        status, error_type = RunStatus.ERROR, "internal"
    finally:
        current_run.reset(token)
    if reply is not None and reply.failed:
        failure = ctx.last_provider_failure
        limited = failure is not None and failure.status_code in RATE_LIMIT_STATUS
        status = RunStatus.RATE_LIMITED if limited else RunStatus.ERROR
        error_type = "rate_limited" if limited else "provider_error"
    title = reply.title if reply is not None and status == RunStatus.COMPLETED else None
    calls = _ledger(ctx, reply)
    usage = {
        "run_id": run_id, "user_id": user_id, "username": username, "session_id": session_id,
        "request_id": request_id, "team_id": team_id, "kind": UsageKind.NAMING, "model": str(model_spec()),
        "status": status, "error_type": error_type,
        "error_message": (ctx.last_provider_failure.message if ctx.last_provider_failure and error_type else "")[:2000],
        **{name: sum(c["tokens"].get(name, 0) for c in calls) for name in TOKEN_FIELDS},
        "estimated_tokens": sum(c["estimated_tokens"] for c in calls),
        "model_calls": sum(c["calls"] for c in calls), "retries": ctx.retries,
        "backoff_seconds": round(ctx.backoff_seconds, 3), "streamed": False, "started_at": started_at,
        "finished_at": datetime.now(UTC), "duration_ms": int((time.monotonic() - started) * 1000),
    }
    store = asyncio.ensure_future(_store_when_possible(usage, calls, title))
    try:
        renamed = await asyncio.shield(store)
    except asyncio.CancelledError:
        cancelled = True
        renamed = False  # the write goes on (its retries too); the sockets are not told
    if cancelled:
        raise asyncio.CancelledError
    if not renamed:
        return None
    try:
        await session_renamed.asend(sender=ChatSession, user_id=user_id, session_id=session_id, session_name=title,
                                    named_by=NamedBy.MODEL)
    except Exception:  # noqa: BLE001 - the name is stored; open pages see it at their next refresh
        logger.exception("could not tell the sockets of user %s that session %s was named", user_id, session_id)
    return title


def _ledger(ctx: RunContext, reply: Any) -> list[dict[str, Any]]:
    """The naming call's calls per agent x model (metrics.recording.record_run's `calls`): the one
    agno reported, and the attempts the retry layer billed that agno never reported (cut off)."""
    entries: dict[tuple[str, str, str], dict[str, Any]] = {}

    def entry(agent: str, model: str, provider: str) -> dict[str, Any]:
        key = (agent, model, provider)
        if key not in entries:
            entries[key] = {"agent": agent, "model": model, "provider": provider, "calls": 0,
                            "tokens": dict.fromkeys(TOKEN_FIELDS, 0), "estimated_tokens": 0, "provider_cost": None}
        return entries[key]

    if reply is not None and (reply.calls or reply.tokens["total_tokens"]):
        row = entry(UsageKind.NAMING.value, reply.model, reply.provider)
        row["calls"] += reply.calls
        for name in TOKEN_FIELDS:
            row["tokens"][name] += reply.tokens.get(name, 0)
        row["provider_cost"] = reply.provider_cost
    for cut in ctx.cut_calls:
        row = entry(cut.agent or UsageKind.NAMING.value, cut.model, cut.provider)
        row["calls"] += cut.calls
        for name in TOKEN_FIELDS:
            row["tokens"][name] += cut.tokens.get(name, 0)
        if cut.estimated:
            row["estimated_tokens"] += cut.tokens.get("total_tokens", 0)
    return list(entries.values())
