"""A running run's completed provider calls, kept on its usage row (its live ledger) as they complete.

A run's ledger (its calls per agent x model: chat.runs.accounting) is written with its terminal
status at its end. A run whose server process dies never gets there; so while it runs, the calls
it completed are also written to its running usage row (`RunUsage.live_ledger`, tokens,
`model_calls`: metrics.recording.update_live_ledgers), and the process that closes the run for
its lost worker (chat.runs.reaper) bills them from there.

Cheap on purpose: the run task only notes that a run has a new call (`note`, two integer
compares per event in chat.runs.drive); at most CIRKELLINE_LIVE_LEDGER_SECONDS later, one
statement (an executemany, off the loop) writes every noted run of the process. Under load many
runs share a write. The cost: a call that completed less than that delay before the process died
is not billed (nor is one cut off by the death: its provider's usage never came).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from typing import TYPE_CHECKING, Any

from django.conf import settings

from chat.storage.executor import run_db
from metrics.recording import update_live_ledgers

if TYPE_CHECKING:
    from .handle import RunHandle

logger = logging.getLogger(__name__)

# Per event loop: the runs noted since the last write (run id -> handle).
_pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RunHandle]] = weakref.WeakKeyDictionary()
_writing: set[asyncio.Task] = set()
# The write belongs to no run: a run's abort must not cancel it, nor its finalisation wait for it.
_NO_RUN = contextvars.Context()


def note(handle: RunHandle) -> None:
    """The run completed a provider call: have its live ledger written soon (with every other run's)."""
    loop = asyncio.get_running_loop()
    pending = _pending.get(loop)
    if pending is None:
        pending = _pending[loop] = {}
    if not pending:
        delay = settings.CIRKELLINE_LIVE_LEDGER_SECONDS
        if delay:
            loop.call_later(delay, _write, loop, context=_NO_RUN)
        else:
            loop.call_soon(_write, loop, context=_NO_RUN)
    pending[handle.run_id] = handle


def tally(handle: RunHandle) -> tuple[str, dict[str, int], int, list[dict[str, Any]]]:
    """The run's calls so far as `update_live_ledgers` takes them: (run id, tokens, calls, ledger),
    the calls the retry layer billed itself (cut off, retried, memory) included."""
    account, ctx = handle.account, handle.ctx
    tokens, calls = dict(account.tokens), account.model_calls
    entries: dict[tuple[str, str, str], dict[str, Any]] = {
        key: {"agent": entry.agent, "model": entry.model, "provider": entry.provider, "calls": entry.calls,
              "tokens": dict(entry.tokens), "estimated_tokens": entry.estimated_tokens}
        for key, entry in account.by_model.items()
    }
    for cut in ctx.cut_calls:
        key = (cut.agent, cut.model, cut.provider)
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = {"agent": cut.agent, "model": cut.model, "provider": cut.provider, "calls": 0,
                                    "tokens": dict.fromkeys(tokens, 0), "estimated_tokens": 0}
        entry["calls"] += cut.calls
        calls += cut.calls
        for name, value in cut.tokens.items():
            if name in tokens:
                entry["tokens"][name] += value
                tokens[name] += value
        if cut.estimated:
            entry["estimated_tokens"] += cut.tokens.get("total_tokens", 0)
    for key, cost in ctx.provider_costs.items():
        if key in entries:
            entries[key]["provider_cost"] = str(cost)
    return handle.run_id, tokens, calls, list(entries.values())


def _write(loop: asyncio.AbstractEventLoop) -> None:
    pending = _pending.get(loop)
    if not pending:
        return
    # A run in its final write needs none (its terminal write replaces the live ledger).
    tallies = [tally(handle) for handle in pending.values() if not handle._finalizing]
    pending.clear()
    if tallies:
        task = loop.create_task(_write_logged(tallies), name="cirkelline-live-ledger")
        _writing.add(task)
        task.add_done_callback(_writing.discard)


async def _write_logged(tallies: list) -> None:
    try:
        await run_db(update_live_ledgers, tallies)
    except Exception as exc:  # noqa: BLE001 - the database is down: the final write bills the runs anyway
        logger.warning("could not write the live ledgers of %d runs (%s: %s)", len(tallies), type(exc).__name__, exc)
