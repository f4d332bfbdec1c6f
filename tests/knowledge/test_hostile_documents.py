"""Hostile documents: compression bombs in a PDF and in a DOCX, entity expansion, more pages or text
than kept, binaries posing as text. Each is refused at upload (415) or fails its processing with
a sentence saying why; none leaves chunks behind. (A prompt injection inside a document:
tests/runs/test_knowledge.py.)"""

from __future__ import annotations

import functools
import os

import pytest

from chat.knowledge.models import KnowledgeChunk, KnowledgeDocument
from chat.runs.knowledge import settle_processing
from tests.conftest import adb, bearer
from tests.knowledge import files

pytestmark = pytest.mark.django_db(transaction=True)


@functools.cache
def pdf_bomb() -> bytes:
    return files.pdf_bomb(120 * 1024 * 1024)  # past pypdf's 75 MB cap on a decompressed stream


@functools.cache
def docx_bomb() -> bytes:
    return files.docx_bomb(300 * 1024 * 1024)


async def status_after_upload(api, user, name, content, content_type="application/octet-stream") -> dict:
    response = await api.post("/knowledge/content", files={"file": (name, content, content_type)},
                              headers=bearer(user))
    assert response.status_code == 202, response.text
    await settle_processing(60)
    return (await api.get(f"/knowledge/content/{response.json()['id']}/status", headers=bearer(user))).json()


async def test_a_pdf_bomb_fails_without_inflating(api, alice):
    assert len(pdf_bomb()) < 1024 * 1024
    status = await status_after_upload(api, alice, "bomb.pdf", pdf_bomb(), "application/pdf")
    assert status["status"] == "failed" and "compression bomb" in status["status_message"]
    assert await adb(KnowledgeChunk.objects.count) == 0


async def test_a_zip_bomb_in_a_docx_fails_without_inflating(api, alice):
    assert len(docx_bomb()) < 1024 * 1024
    status = await status_after_upload(api, alice, "bomb.docx", docx_bomb())
    assert status["status"] == "failed" and "zip bomb" in status["status_message"]


async def test_a_docx_declaring_entities_fails(api, alice):
    status = await status_after_upload(api, alice, "laughs.docx", files.docx_entities())
    assert status["status"] == "failed" and "declares entities" in status["status_message"]


async def test_more_pages_than_kept_fail(api, alice, settings):
    settings.CIRKELLINE_KNOWLEDGE_MAX_PAGES = 3
    status = await status_after_upload(api, alice, "long.pdf", files.pdf(["a page"] * 4), "application/pdf")
    assert status["status"] == "failed" and "4 pages" in status["status_message"]
    ok = await status_after_upload(api, alice, "short.pdf", files.pdf(["a page"] * 3), "application/pdf")
    assert ok["status"] == "completed"


async def test_a_huge_page_fails_on_the_character_limit(api, alice, settings):
    settings.CIRKELLINE_KNOWLEDGE_MAX_CHARS = 5000
    huge = files.pdf(["word " * 2000], compress=True)
    status = await status_after_upload(api, alice, "huge.pdf", huge, "application/pdf")
    assert status["status"] == "failed" and "more than 5000 characters" in status["status_message"]
    status = await status_after_upload(api, alice, "huge.txt", b"word " * 2000, "text/plain")
    assert status["status"] == "failed" and "more than 5000 characters" in status["status_message"]


@pytest.mark.parametrize("name, content", [
    ("notes.txt", os.urandom(4096)),
    ("notes.txt", b"text with a NUL \x00 inside"),
    ("notes.md", b"\x7fELF\x02\x01\x01" + b"\x00" * 64),
    ("notes.txt", bytes(range(1, 32)) * 20),
    ("archive.docx", files._zip({"readme.txt": b"not a word document"})),
])
async def test_binaries_posing_as_text_are_refused_at_upload(api, alice, name, content):
    response = await api.post("/knowledge/content", files={"file": (name, content, "text/plain")},
                              headers=bearer(alice))
    assert response.status_code == 415, response.text
    assert await adb(KnowledgeDocument.objects.count) == 0
