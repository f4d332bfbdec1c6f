"""Memory housekeeping: freed memory goes back to the system once the process is idle."""

import asyncio

from cirkelline_site import process_tuning


async def test_memory_is_released_only_once_the_process_is_idle(monkeypatch):
    calls = []
    monkeypatch.setattr(process_tuning, "IDLE_DELAY", 0.01)
    monkeypatch.setattr(process_tuning, "trim_memory", lambda: calls.append("trim"))
    busy = {"runs": 1}
    process_tuning.release_when_idle(lambda: busy["runs"] == 0)
    await _until(lambda: not process_tuning.release_pending())
    assert calls == []  # a run was still live: nothing done

    busy["runs"] = 0
    process_tuning.release_when_idle(lambda: busy["runs"] == 0)
    process_tuning.release_when_idle(lambda: busy["runs"] == 0)  # debounced: one release
    await _until(lambda: not process_tuning.release_pending())
    assert calls == ["trim"]


def test_trimming_is_safe_to_call():
    process_tuning.trim_memory()  # glibc malloc_trim, or nothing where it does not exist


async def _until(condition, within: float = 30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline
        await asyncio.sleep(0.005)
