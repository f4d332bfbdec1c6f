"""The event-loop watch: a blocking call raises the lag histogram and logs one warning naming it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from chat.observability.loop_watch import LoopWatch, ensure_watched
from tests.observability.conftest import total

pytestmark = pytest.mark.django_db(transaction=True)

WATCH_LOGGER = "chat.observability.loop_watch"


def _stall_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == WATCH_LOGGER and r.levelno == logging.WARNING]


async def _until(condition, within: float = 30.0) -> None:
    """Wait for `condition` (a bound, not a synchronisation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "the watch did not get there"
        await asyncio.sleep(0.01)


@pytest.mark.urls("tests.observability.urls")
async def test_a_view_that_blocks_the_loop_raises_the_lag_histogram_and_logs_one_stall(api, scrape, caplog):
    """Guards against a blocking call on the loop going unseen in production: no lag, no warning, no
    stack, or a warning per heartbeat for one stall."""
    caplog.set_level(logging.INFO)
    assert (await api.get("/health")).status_code == 200  # the app has started this loop's watch
    before = await scrape()
    blocked = await api.get("/test-only/block")
    assert blocked.status_code == 200
    watch = ensure_watched(0.5)  # the one the app started
    beat = watch.beat_at
    await _until(lambda: watch.beat_at > beat)  # a heartbeat after the block: its lag is recorded
    after = await scrape()

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("cirkelline_event_loop_lag_seconds_sum") >= 0.9
    slow_beats = delta("cirkelline_event_loop_lag_seconds_count") - delta("cirkelline_event_loop_lag_seconds_bucket",
                                                                          le="0.5")
    assert slow_beats >= 1  # the heartbeat due during the block ran late by most of it
    assert delta("cirkelline_event_loop_stalls_total") == 1
    warnings = _stall_warnings(caplog)
    assert len(warnings) == 1
    assert "hold_the_loop_for_a_second" in warnings[0].getMessage()
    assert "time.sleep(1)" in warnings[0].getMessage()


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # noqa: ASYNC251 - the block under test


async def test_each_stall_is_reported_once_and_a_short_block_not_at_all(caplog):
    """Guards against repeated warnings for one stall, a second stall going unreported, and blocks under
    the threshold being reported."""
    caplog.set_level(logging.INFO)
    watch = LoopWatch(stall_seconds=0.3, interval=0.05)
    watch.start()
    try:
        beat = watch.beat_at
        await _until(lambda: watch.beat_at > beat)
        _hold_the_loop(0.1)  # under the threshold
        beat = watch.beat_at
        await _until(lambda: watch.beat_at > beat)
        assert _stall_warnings(caplog) == []
        _hold_the_loop(1.0)
        beat = watch.beat_at
        await _until(lambda: watch.beat_at > beat)
        _hold_the_loop(0.6)
        beat = watch.beat_at
        await _until(lambda: watch.beat_at > beat)
    finally:
        watch.stop()
    warnings = _stall_warnings(caplog)
    assert len(warnings) == 2 and watch.stalls == 2
    assert all("_hold_the_loop" in w.getMessage() for w in warnings)
    assert warnings[0].blocked_ms >= 300


def test_a_stopped_loop_is_not_a_stall(caplog):
    """Guards against false alarms when the loop is not running at all (nothing is blocking it), while a real
    block on the same loop afterwards is still reported."""
    caplog.set_level(logging.INFO)
    loop = asyncio.new_event_loop()
    watch = LoopWatch(stall_seconds=0.2, interval=0.05)

    async def start() -> None:
        watch.start()

    async def block_then_beat() -> None:
        _hold_the_loop(0.5)
        beat = watch.beat_at
        await _until(lambda: watch.beat_at > beat)

    try:
        loop.run_until_complete(start())
        time.sleep(0.6)  # the loop is stopped, not blocked: the watchdog sees it not running
        loop.run_until_complete(asyncio.sleep(0.2))
        assert _stall_warnings(caplog) == []
        loop.run_until_complete(block_then_beat())
    finally:
        watch.stop()
        loop.close()
    assert len(_stall_warnings(caplog)) == 1
