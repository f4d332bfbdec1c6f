"""Deeply nested JSON is refused before anything runs, and a streamed run always ends cleanly.

Two guarantees:
- every JSON body and JSON field (`session_state`, `dependencies`, `metadata`) has a nesting limit
  (`CIRKELLINE_MAX_JSON_DEPTH`), checked while parsing: too deep is a 400 naming the limit, with
  nothing run and nothing written;
- whatever goes wrong while a run's events are sent (encoding an event or merging deltas into the
  run's log, reading the log), the SSE stream still ends with exactly one terminal `TeamRunError`
  frame (`error_type: internal`), the response completes, the run is stopped and has its usage row.
"""

from __future__ import annotations

import json

import pytest

from chat.models import ChatRun, ChatSession
from metrics.models import RunUsage
from tests.conftest import adb, bearer, parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"
TERMINAL = {"TeamRunCompleted", "TeamRunError", "TeamRunCancelled"}


def nested(depth: int) -> dict:
    """A JSON object `depth` levels deep: {"a": {"a": ... 1}}."""
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[return-value]


async def nothing_written() -> bool:
    counts = [await adb(model.objects.count) for model in (RunUsage, ChatSession, ChatRun)]
    return counts == [0, 0, 0]


@pytest.mark.parametrize("field", ["session_state", "dependencies", "metadata"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("encoding", ["json", "form"])
async def test_a_depth_700_field_is_refused_before_the_run(api, alice, field, stream, encoding):
    """Guards against: a deeply nested field reaching agno (non-streamed: billed, then a 500 from a
    RecursionError serialising the run; streamed: no terminal frame, the connection left open)."""
    body = {"message": "hi", "stream": stream, field: nested(700)}
    if encoding == "json":
        response = await api.post(RUNS, content=json.dumps(body).encode(),
                                  headers={**bearer(alice), "Content-Type": "application/json"})
    else:
        form = {"message": "hi", "stream": str(stream).lower(), field: json.dumps(nested(700))}
        response = await api.post(RUNS, data=form, headers=bearer(alice))
    assert response.status_code == 400, response.text[:300]
    detail = response.json()["detail"]
    assert f"'{field}'" in detail and "32" in detail and "nested" in detail
    assert await nothing_written()


async def test_the_limit_is_a_setting_and_depth_at_the_limit_runs(api, alice, settings):
    """Guards against an off-by-one that refuses what the documented limit allows."""
    settings.CIRKELLINE_MAX_JSON_DEPTH = 5
    ok = await api.post(RUNS, json={"message": "hi", "stream": False, "session_state": nested(5)},
                        headers=bearer(alice))
    assert ok.status_code == 200, ok.text[:300]
    refused = await api.post(RUNS, json={"message": "hi", "stream": False, "session_state": nested(6)},
                             headers=bearer(alice))
    assert refused.status_code == 400 and "the limit is 5 levels" in refused.json()["detail"]
    assert await adb(RunUsage.objects.count) == 1


async def test_any_deep_json_body_is_refused(api, alice):
    """Guards against only the three known fields being checked: an unknown field or a rename body
    is parsed too, so it is limited too."""
    unknown = await api.post(RUNS, json={"message": "hi", "whatever": nested(700)}, headers=bearer(alice))
    rename = await api.post("/sessions/abc/rename", json={"session_name": "x", "extra": nested(700)},
                            headers=bearer(alice))
    top = await api.post(RUNS, content=json.dumps([nested(700)]).encode(),
                         headers={**bearer(alice), "Content-Type": "application/json"})
    assert [r.status_code for r in (unknown, rename, top)] == [400, 400, 400]
    assert "'whatever'" in unknown.json()["detail"] and "'extra'" in rename.json()["detail"]
    assert "nested" in top.json()["detail"]
    assert await nothing_written()


def _raise_on_call(n: int, real):
    calls = {"n": 0}

    def broken(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError("simulated bug in the stream path")
        return real(*args, **kwargs)

    return broken


def _broken_follow(real):
    async def broken(self, *args, **kwargs):
        seen = 0
        async for batch in real(self, *args, **kwargs):
            seen += 1
            if seen == 3:
                raise RuntimeError("simulated bug reading the run's events")
            yield batch

    return broken


@pytest.mark.parametrize("where", ["encoder", "coalesce", "event log"])
async def test_an_exception_mid_stream_still_ends_it_with_one_terminal_frame(api, alice, monkeypatch,
                                                                            use_latency, where):
    """Guards against a stream that stops without a terminal frame and never closes when anything
    in the stream path raises (the RecursionError of a deeply nested field was one such thing),
    and against a run left going, or left without its usage row, when that happens."""
    from chat.runs import eventlog, live_run, logentries, runlog

    use_latency(0.2)  # the run is still talking to the provider when the stream path breaks
    if where == "encoder":
        monkeypatch.setattr(logentries, "event_json", _raise_on_call(3, logentries.event_json))
    elif where == "coalesce":
        monkeypatch.setattr(eventlog, "coalesce_numbered", _raise_on_call(3, eventlog.coalesce_numbered))
    else:
        monkeypatch.setattr(runlog.RunLog, "follow", _broken_follow(runlog.RunLog.follow))

    response = await api.post(RUNS, data={"message": "Please research the history of Copenhagen"},
                              headers=bearer(alice))

    assert response.status_code == 200
    frames = parse_sse(response.text)  # the response completed, and every frame is well formed
    terminals = [f for f in frames if f.event in TERMINAL]
    assert len(terminals) == 1 and frames[-1] is terminals[0]
    terminal = frames[-1]
    assert terminal.event == "TeamRunError" and terminal.data["error_type"] == "internal"
    assert "stream" in terminal.data["content"] and "Traceback" not in terminal.data["content"]
    run_id = frames[0].data["run_id"]
    assert terminal.data["run_id"] == run_id and terminal.data["session_id"] == frames[0].data["session_id"]
    row = await adb(RunUsage.objects.get, run_id=run_id)  # written before the response ended
    assert (row.status, row.error_type) == ("error", "internal")
    assert live_run(run_id) is None


async def test_a_failure_encoding_the_last_batch_still_sends_one_terminal_frame(api, alice, monkeypatch):
    """Guards against a second terminal frame (or none) when the batch that fails holds the run's own
    terminal event: the run has already ended and is billed as completed, the client is told the
    stream broke."""
    from chat.runs import logentries

    real = logentries.event_json

    def broken(event):
        if getattr(event, "event", "") == "TeamRunCompleted":
            raise RuntimeError("simulated bug encoding the terminal event")
        return real(event)

    monkeypatch.setattr(logentries, "event_json", broken)
    response = await api.post(RUNS, data={"message": "What is 2+2?"}, headers=bearer(alice))
    frames = parse_sse(response.text)
    assert [f.event for f in frames if f.event in TERMINAL] == ["TeamRunError"]
    assert frames[-1].data["error_type"] == "internal"
    row = await adb(RunUsage.objects.get, run_id=frames[0].data["run_id"])
    assert row.status == "completed"
