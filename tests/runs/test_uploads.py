"""The upload store for websocket runs (chat.runs.uploads): its limit holds under concurrent
uploads, and expired uploads are swept by the server, whether or not their owner comes back."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from chat.runs import uploads

from ..conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def store(settings, tmp_path):
    """An upload store of this test's own, with the run API's default of 10 files per message."""
    settings.VAR_DIR = tmp_path
    settings.CIRKELLINE_MAX_FILES = 10
    return tmp_path / "uploads"


def _pending(store, user) -> list[str]:
    return sorted(p.name for p in (store / str(user.pk)).glob("*.json"))


def _ten_files() -> list:
    return [("files", (f"cat{i}.png", PNG, "image/png")) for i in range(10)]


async def test_concurrent_uploads_never_pass_the_pending_limit(api, alice, store, monkeypatch):
    """Guards against a count-then-write race: 12 concurrent uploads of 10 files each were all
    counted against an empty store, and 60 files were kept against a limit of 30. Writing a file
    or reserving its place takes a while here, as on a slow disk (the race needs an upload counted while
    another one is being stored)."""
    from pathlib import Path

    for name in ("write_bytes", "touch"):  # a slow disk: creating or writing a file takes 10 ms
        original = getattr(Path, name)

        def slow(path, *args, _original=original, **kwargs):
            time.sleep(0.01)
            return _original(path, *args, **kwargs)

        monkeypatch.setattr(Path, name, slow)
    responses = await asyncio.gather(*(api.post("/uploads", files=_ten_files(), headers=bearer(alice))
                                       for _ in range(12)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [429] * 9, statuses
    kept = sum(len(r.json()["files"]) for r in responses if r.status_code == 201)
    assert kept == 30 and len(_pending(store, alice)) == 30
    assert len(list((store / str(alice.pk)).glob("*.bin"))) == 30
    refused = next(r for r in responses if r.status_code == 429)
    assert "at most 30" in refused.json()["detail"] and int(refused.headers["Retry-After"]) > 0


@pytest.mark.parametrize(("extra", "named"), [({"data": {"note": "for the run"}}, "'note'"),
                                              ({"files": [("other", ("dog.png", PNG, "image/png"))]}, "'other'")])
async def test_an_upload_with_anything_besides_files_is_refused_and_stores_nothing(api, alice, store, extra, named):
    """Found by schemathesis: other fields and parts were silently dropped (the document allowed them),
    so a client never learnt that what it sent beside its files went nowhere."""
    files = [*_ten_files()[:1], *extra.get("files", [])]
    response = await api.post("/uploads", files=files, data=extra.get("data"), headers=bearer(alice))
    assert response.status_code == 400 and named in response.json()["detail"], response.text
    assert _pending(store, alice) == [] and list(store.rglob("*.bin")) == []


def _expire(store, user) -> None:
    old = time.time() - uploads.UPLOAD_TTL - 60
    for path in (store / str(user.pk)).iterdir():
        os.utime(path, (old, old))


async def test_expired_uploads_are_swept_though_their_owner_never_uploads_again(api, alice, bob, store):
    """Guards against expired files staying on disk until their owner uploads again (the only
    moment the store was pruned): the sweep removes every user's expired uploads."""
    for user in (alice, bob):
        assert (await api.post("/uploads", files=_ten_files()[:2], headers=bearer(user))).status_code == 201
    _expire(store, alice)
    await uploads.sweep()
    assert _pending(store, alice) == [] and list((store / str(alice.pk)).glob("*.bin")) == []
    assert len(_pending(store, bob)) == 2, "bob's uploads have not expired"


async def test_every_server_process_sweeps_on_its_own(api, alice, store, monkeypatch):
    """Guards against a sweep that only an upload or a run would trigger: the server sweeps from its
    first connection on, again and again (here every 50 ms instead of every few minutes)."""
    assert (await api.post("/uploads", files=_ten_files()[:1], headers=bearer(alice))).status_code == 201
    _expire(store, alice)
    loop, swept = asyncio.get_running_loop(), asyncio.Event()
    sweep = uploads._sweep

    def sweep_and_say_so():
        sweep()
        loop.call_soon_threadsafe(swept.set)

    monkeypatch.setattr(uploads, "_sweep", sweep_and_say_so)
    monkeypatch.setattr(uploads, "SWEEP_EVERY", 0.05)
    uploads.stop_sweeping()  # the sweep this test's first request started, at the usual period
    assert (await api.get("/health")).status_code == 200  # any request of this process
    await asyncio.wait_for(swept.wait(), 10)
    assert _pending(store, alice) == []
    uploads.stop_sweeping()
