"""The benchmark's loop-lag instrumentation measures a blocked loop and honours resets."""

import asyncio
import json
import time

from bench.loopstats import LoopMonitor

BLOCK = 0.5  # seconds the test blocks the loop for


async def test_a_blocked_loop_shows_up_as_lag_and_reset_clears_it(tmp_path):
    monitor = LoopMonitor(tmp_path)
    task = asyncio.get_running_loop().create_task(monitor.run())
    await _until(lambda: len(monitor.samples) >= 3)  # the heartbeat is running
    seen = len(monitor.samples)
    time.sleep(BLOCK)  # noqa: ASYNC251 - deliberately block the loop: this is the lag being measured
    await _until(lambda: len(monitor.samples) > seen)  # the heartbeat woke up after the block
    summary = monitor.summary()
    assert summary["lag_max_ms"] >= 0.9 * BLOCK * 1000 and summary["lag_samples"] > 3
    assert summary["rss_bytes"] > 0 and summary["cpu_user_s"] > 0

    (tmp_path / "reset").touch()
    written = await _next_write_after(tmp_path, time.time())
    assert written["window_started"] >= (tmp_path / "reset").stat().st_mtime - 1
    # the block's lag is gone from the new window (a busy machine's lag stays far below it)
    assert written["lag_max_ms"] < summary["lag_max_ms"] / 2
    task.cancel()


async def _until(condition, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the monitor did not get there"
        await asyncio.sleep(0.01)


async def _next_write_after(directory, since: float, within: float = 30.0) -> dict:
    """The first stats file written after `since` (the monitor writes once a second)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for path in directory.glob("stats-*.json"):
            data = json.loads(path.read_text())
            if data["written_at"] > since:
                return data
        await asyncio.sleep(0.05)
    raise AssertionError("no stats written")
