"""Memory housekeeping: freed memory goes back to the system once the process is idle."""

import asyncio

from chat import memory


async def test_memory_is_released_only_once_the_process_is_idle(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "IDLE_DELAY", 0.01)
    monkeypatch.setattr(memory, "_trim", lambda: calls.append("trim"))
    busy = {"runs": 1}
    memory.release_when_idle(lambda: busy["runs"] == 0)
    await _until(lambda: memory._timer is None)
    assert calls == []  # a run was still live: nothing done

    busy["runs"] = 0
    memory.release_when_idle(lambda: busy["runs"] == 0)
    memory.release_when_idle(lambda: busy["runs"] == 0)  # debounced: one release
    await _until(lambda: memory._timer is None)
    assert calls == ["trim"]


def test_trimming_is_safe_to_call():
    memory._trim()  # glibc malloc_trim, or nothing where it does not exist


async def _until(condition, within: float = 30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline
        await asyncio.sleep(0.005)
