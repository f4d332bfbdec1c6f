"""Files waiting for a websocket run: uploaded over HTTP first (`POST /uploads`, chat.api.views),
then named in a `run` frame (chat.ws.consumer), which takes them from here.

Why a store of our own: megabytes of media do not belong in a websocket frame, so the chat page
uploads a message's files with an ordinary multipart POST, checked exactly like the run API's
(chat.api.parsing.uploaded_files: types, sizes, count), and the `run` frame carries their ids. A file
lives under `<var>/uploads/<user id>/`, where every server process on the host finds it; it
belongs to its uploader (another user's id is simply not found), is used by one run, and is
removed after `UPLOAD_TTL` seconds if no run used it. Disk work runs in a thread, off the loop.

A user's pending files are bounded (3 x CIRKELLINE_MAX_FILES), and the bound holds for
concurrent uploads in every process of the host: the count and the reservation of the new files'
slots happen under an exclusive lock on the user's directory (`flock` on its `.lock`), the
writing after it; the store is per host, and so is its bound. Expired uploads are swept by every
server process (`swept`, from its first connection on, every SWEEP_EVERY seconds with jitter),
not only when their owner uploads again.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import random
import re
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from chat.errors import BadRequest

from .request import Attachment

logger = logging.getLogger(__name__)

UPLOAD_TTL = 3600.0
SWEEP_EVERY = 600.0  # seconds between a process's sweeps (+-20 % so workers spread out)
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# Suffixes of an upload's files: its content, its description (it is ready), its reserved slot.
CONTENT, META, SLOT = ".bin", ".json", ".slot"


def _root() -> Path:
    return Path(settings.VAR_DIR) / "uploads"


def _user_dir(user_pk: int) -> Path:
    return _root() / str(int(user_pk))


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """The user's store to ourselves, across threads and processes of this host (held briefly)."""
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune(directory: Path, now: float) -> int:
    """Remove expired uploads (and slots and contents a crash left behind); the number still pending.

    Under the directory's lock. An upload counts from its slot's reservation until it is used or
    expires: its slot while it is being written, then its description.
    """
    pending = set()
    for path in directory.iterdir():
        if path.suffix not in (CONTENT, META, SLOT):
            continue
        try:
            expired = path.stat().st_mtime < now - UPLOAD_TTL
        except FileNotFoundError:
            continue
        if expired:
            path.unlink(missing_ok=True)
            if path.suffix == META:
                path.with_suffix(CONTENT).unlink(missing_ok=True)
        elif path.suffix != CONTENT:
            pending.add(path.stem)
    return len(pending)


def _save(user_pk: int, attachments: list[Attachment]) -> list[dict]:
    directory = _user_dir(user_pk)
    directory.mkdir(parents=True, exist_ok=True)
    # A user's pending files are bounded, so uploads never used by a run cannot fill the disk.
    limit = 3 * settings.CIRKELLINE_MAX_FILES
    ids = [uuid.uuid4().hex for _ in attachments]
    with _locked(directory):  # counted and reserved at once: concurrent uploads cannot both fit
        if _prune(directory, time.time()) + len(attachments) > limit:
            raise BadRequest(429, f"Too many uploaded files waiting for a message (at most {limit}); send or "
                                  "discard some first, or wait for them to expire.", retry_after=60)
        for upload_id in ids:
            (directory / f"{upload_id}{SLOT}").touch()
    saved = []
    try:
        for upload_id, item in zip(ids, attachments, strict=True):
            (directory / f"{upload_id}{CONTENT}").write_bytes(item.content)
            meta = {"id": upload_id, "name": item.name, "kind": item.kind, "mime_type": item.mime_type,
                    "size": len(item.content)}
            (directory / f"{upload_id}{META}").write_text(json.dumps(meta))
            saved.append(meta)
    except BaseException:
        for upload_id in ids:  # none of a failed upload's files stays
            for suffix in (META, CONTENT):
                (directory / f"{upload_id}{suffix}").unlink(missing_ok=True)
        raise
    finally:
        for upload_id in ids:
            (directory / f"{upload_id}{SLOT}").unlink(missing_ok=True)
    return saved


def _take(user_pk: int, upload_ids: list[str]) -> list[Attachment]:
    directory = _user_dir(user_pk)
    if not directory.is_dir():
        raise BadRequest(404, "An attached file was not found: it expired or was already sent. Attach it again.",
                         upload_id=upload_ids[0])
    now = time.time()
    found = []
    with _locked(directory):  # used once, even by two runs naming it at the same moment
        for upload_id in upload_ids:
            meta_path = directory / f"{upload_id}{META}"
            try:
                fresh = meta_path.stat().st_mtime >= now - UPLOAD_TTL
                meta = json.loads(meta_path.read_text()) if fresh else None
                content = meta_path.with_suffix(CONTENT).read_bytes() if fresh else None
            except FileNotFoundError:
                meta = content = None
            if meta is None or content is None:
                raise BadRequest(404, "An attached file was not found: it expired or was already sent. Attach it "
                                      "again.", upload_id=upload_id)
            found.append((meta_path, Attachment(kind=meta["kind"], name=meta["name"], mime_type=meta["mime_type"],
                                                content=content)))
        for meta_path, _ in found:  # used once: a run that fails to start takes its files with it
            meta_path.unlink(missing_ok=True)
            meta_path.with_suffix(CONTENT).unlink(missing_ok=True)
    return [attachment for _, attachment in found]


def _sweep() -> int:
    """Remove every user's expired uploads; the number of users' stores looked at."""
    root, now, seen = _root(), time.time(), 0
    if not root.is_dir():
        return 0
    for directory in root.iterdir():
        if directory.is_dir():
            seen += 1
            with _locked(directory):
                _prune(directory, now)
    return seen


async def take(user_pk: int, upload_ids: object) -> list[Attachment]:
    """The user's uploads named in a `run` frame, removed from the store (BadRequest if one is missing)."""
    if upload_ids in (None, []):
        return []
    if not isinstance(upload_ids, list) or not all(isinstance(i, str) and _ID_RE.match(i) for i in upload_ids):
        raise BadRequest(400, "'files' must be a list of upload ids from POST /uploads.")
    if len(upload_ids) > settings.CIRKELLINE_MAX_FILES:
        raise BadRequest(413, f"Too many files: at most {settings.CIRKELLINE_MAX_FILES} per message.")
    return await asyncio.to_thread(_take, user_pk, upload_ids)


async def save(user_pk: int, attachments: list[Attachment]) -> list[dict]:
    """Keep a user's uploaded files for a later run: their ids, names, kinds and sizes."""
    return await asyncio.to_thread(_save, user_pk, attachments)


async def sweep() -> None:
    """Remove every user's expired uploads now (off the loop)."""
    await asyncio.to_thread(_sweep)


# --- the periodic sweep of each server process -----------------------------------------------

_sweepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.TimerHandle] = weakref.WeakKeyDictionary()
_sweeping: set[asyncio.Task] = set()


def _arm(loop: asyncio.AbstractEventLoop, delay: float) -> None:
    _sweepers[loop] = loop.call_later(delay, _tick, loop)


def _tick(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(_sweep_logged(), name="uploads-sweep")
    _sweeping.add(task)
    task.add_done_callback(_sweeping.discard)
    _arm(loop, SWEEP_EVERY * random.uniform(0.8, 1.2))


async def _sweep_logged() -> None:
    try:
        await sweep()
    except Exception:  # noqa: BLE001 - a full or read-only disk: said, and tried again next time
        logger.exception("could not sweep expired uploads")


def ensure_sweeping() -> None:
    """Sweep expired uploads from the running loop, periodically (once per loop; the first sweep
    soon, at a random point of the first fifth of the period, so workers started together spread)."""
    loop = asyncio.get_running_loop()
    if loop not in _sweepers:
        _arm(loop, SWEEP_EVERY * random.uniform(0, 0.2))


def stop_sweeping() -> None:
    """Stop the running loop's periodic sweep (tests; a new connection starts it again)."""
    handle = _sweepers.pop(asyncio.get_running_loop(), None)
    if handle is not None:
        handle.cancel()


def swept(app: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap an ASGI app so the process serving it sweeps expired uploads from its first connection on."""

    async def app_that_sweeps(scope, receive, send):
        ensure_sweeping()
        return await app(scope, receive, send)

    return app_that_sweeps
