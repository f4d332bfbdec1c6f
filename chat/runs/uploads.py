"""Files waiting for a websocket run: uploaded over HTTP first (`POST /uploads`, chat.api.views),
then named in a `run` frame (chat.ws.consumer), which takes them from here.

Why a store of our own: megabytes of media do not belong in a websocket frame, so the chat page
uploads a message's files with an ordinary multipart POST, checked exactly like the run API's
(chat.api.parsing.uploaded_files: types, sizes, count), and the `run` frame carries their ids. A file
lives under `<var>/uploads/<user id>/`, where every server process on the host finds it; it
belongs to its uploader (another user's id is simply not found), is used by one run, and is
removed after `UPLOAD_TTL` seconds if no run used it. Disk work runs in a thread, off the loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

from django.conf import settings

from chat.errors import BadRequest

from .request import Attachment

UPLOAD_TTL = 3600.0
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _user_dir(user_pk: int) -> Path:
    return Path(settings.VAR_DIR) / "uploads" / str(int(user_pk))


def _prune(directory: Path, now: float) -> int:
    """Remove expired uploads; the number still pending."""
    pending = 0
    for meta in directory.glob("*.json"):
        try:
            expired = meta.stat().st_mtime < now - UPLOAD_TTL
        except FileNotFoundError:
            continue
        if expired:
            meta.unlink(missing_ok=True)
            meta.with_suffix(".bin").unlink(missing_ok=True)
        else:
            pending += 1
    return pending


def _save(user_pk: int, attachments: list[Attachment]) -> list[dict]:
    directory = _user_dir(user_pk)
    directory.mkdir(parents=True, exist_ok=True)
    # A user's pending files are bounded, so uploads never used by a run cannot fill the disk.
    limit = 3 * settings.CIRKELLINE_MAX_FILES
    if _prune(directory, time.time()) + len(attachments) > limit:
        raise BadRequest(429, f"Too many uploaded files waiting for a message (at most {limit}); send or discard "
                              "some first, or wait for them to expire.", retry_after=60)
    saved = []
    for item in attachments:
        upload_id = uuid.uuid4().hex
        (directory / f"{upload_id}.bin").write_bytes(item.content)
        meta = {"id": upload_id, "name": item.name, "kind": item.kind, "mime_type": item.mime_type,
                "size": len(item.content)}
        (directory / f"{upload_id}.json").write_text(json.dumps(meta))
        saved.append(meta)
    return saved


def _take(user_pk: int, upload_ids: list[str]) -> list[Attachment]:
    directory = _user_dir(user_pk)
    now = time.time()
    found = []
    for upload_id in upload_ids:
        meta_path = directory / f"{upload_id}.json"
        try:
            fresh = meta_path.stat().st_mtime >= now - UPLOAD_TTL
            meta = json.loads(meta_path.read_text()) if fresh else None
            content = (directory / f"{upload_id}.bin").read_bytes() if fresh else None
        except FileNotFoundError:
            meta = content = None
        if meta is None or content is None:
            raise BadRequest(404, "An attached file was not found: it expired or was already sent. Attach it again.",
                             upload_id=upload_id)
        found.append((meta_path, Attachment(kind=meta["kind"], name=meta["name"], mime_type=meta["mime_type"],
                                            content=content)))
    for meta_path, _ in found:  # used once: a run that fails to start takes its files with it
        meta_path.unlink(missing_ok=True)
        meta_path.with_suffix(".bin").unlink(missing_ok=True)
    return [attachment for _, attachment in found]


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
