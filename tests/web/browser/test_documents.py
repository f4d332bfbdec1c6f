"""The chat page's "My documents": upload with a progress bar, the status followed until the
document is ready, the user's own and the shared documents listed as text (another user's private
ones never), a refused upload explained, delete after a confirmation; and an answer that cites
the document and chunk it used, live and after a reload."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from chat.knowledge.chunking import chunk_pages
from chat.knowledge.models import KnowledgeDocument
from tests.conftest import adb

from .conftest import last_turn, log_in, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.asyncio(loop_scope="module")]

HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">.txt'


def stored(user, name: str, text: str, *, shared: bool = False) -> str:
    doc = KnowledgeDocument.objects.start(user.pk, name=name, description="", file_type="text/plain",
                                          size=len(text), shared=shared, metadata={})
    KnowledgeDocument.objects.complete(doc.pk, chunk_pages([text], paged=False), pages=1)
    return doc.content_id


def names_of(user) -> list[str]:
    return sorted(KnowledgeDocument.objects.filter(owner=user).values_list("name", flat=True))


async def test_alice_uploads_sees_it_ready_and_deletes_it(demo_server, new_page, alice, bob, django_user_model,
                                                          tmp_path):
    staff = await adb(django_user_model.objects.create_user, "staff", password="x-password-1", is_staff=True)
    await adb(stored, bob, "bob-private.txt", "Bob's private notes.")
    await adb(stored, staff, "handbook.txt", "Office hours are nine to five.", shared=True)
    page = await new_page()
    await log_in(page, demo_server)
    await page.click("#open-documents")
    items = page.locator("#document-list .document")
    await expect(items).to_have_count(1)
    await expect(items.first.locator(".document-name")).to_have_text("handbook.txt")
    await expect(items.first.locator(".document-shared")).to_have_text("Shared with everyone")
    assert await items.first.locator("button.delete").count() == 0  # not hers to delete
    await expect(page.locator("#document-list")).not_to_contain_text("bob-private")

    lease = tmp_path / "lease.txt"
    lease.write_text("The rent is 9000 kroner a month, paid on the first of each month.")
    hostile = tmp_path / "notes.txt"
    hostile.write_text("Plain notes.")
    await page.set_input_files("#document-file", [str(lease), str(hostile)])
    await expect(items).to_have_count(3)
    mine = page.locator("#document-list .document", has_text="lease.txt")
    await expect(mine.locator(".document-status")).to_have_text("Ready")
    await expect(mine).to_have_attribute("data-status", "completed")
    await expect(mine.locator(".document-meta")).to_contain_text("1 passage")
    assert await adb(names_of, alice) == ["lease.txt", "notes.txt"]

    binary = tmp_path / "photo.txt"
    binary.write_bytes(bytes(range(256)) * 8)
    await page.set_input_files("#document-file", str(binary))
    await expect(page.locator("#documents-notice")).to_contain_text("photo.txt was not uploaded")
    await expect(page.locator("#documents-notice")).to_contain_text("not a supported document")

    messages = []

    async def accept(dialog):
        messages.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await page.locator("#document-list .document", has_text="notes.txt").locator("button.delete").click()
    await expect(items).to_have_count(2)
    assert messages and "notes.txt" in messages[0]
    assert await adb(names_of, alice) == ["lease.txt"]
    assert await page.evaluate("window.__pwned") is None


async def test_an_answer_cites_the_document_and_chunk_it_used(demo_server, new_page, alice, bob):
    await adb(stored, alice, "lease.txt", "The rent is 9000 kroner a month, paid on the first.")
    await adb(stored, bob, "bob-lease.txt", "Bob pays 12000 kroner rent.")
    await adb(stored, alice, HOSTILE_NAME, "The garden plot has a small rent as well.")
    page = await new_page()
    await log_in(page, demo_server)
    await send(page, "What do my documents say about the rent?")
    turn = last_turn(page)
    await expect(turn.locator(".answer")).to_contain_text("[lease.txt, chunk 1]")
    await expect(turn.locator(".answer")).to_contain_text("9000 kroner")
    await expect(turn.locator(".memory-use .route")).to_have_text("Searching your documents")
    sources = turn.locator(".doc-sources")
    await expect(sources).to_contain_text("lease.txt (chunk 1)")
    await expect(sources).to_contain_text(f"{HOSTILE_NAME} (chunk 1)")  # its name as text, never markup
    await expect(turn).not_to_contain_text("12000")
    await expect(turn).not_to_contain_text("bob-lease")

    await page.reload()  # the stored run shows its sources too
    await expect(last_turn(page).locator(".doc-sources")).to_contain_text("lease.txt (chunk 1)")
    # the sources line is text; the answer is Markdown sanitised by DOMPurify (no handler survives)
    assert await page.locator(".doc-sources img").count() == 0 and await page.evaluate("window.__pwned") is None


async def test_an_upload_shows_its_progress_until_the_server_answers(demo_server, new_page, alice, tmp_path):
    """The server's answer is held back (a routed request), so the upload's row stays: its name and a
    progress bar; once the answer comes, the row gives way to the document."""
    import asyncio

    release = asyncio.Event()

    async def hold(route):
        await release.wait()
        await route.continue_()

    page = await new_page()
    await log_in(page, demo_server)
    await page.route("**/knowledge/content", lambda route: hold(route) if route.request.method == "POST"
                     else route.continue_())
    await page.click("#open-documents")
    big = tmp_path / "big.txt"
    big.write_text("Harbour notes. " * 20_000)
    await page.set_input_files("#document-file", str(big))
    row = page.locator("#document-uploads .document-upload")
    await expect(row.locator(".document-name")).to_have_text("big.txt")
    await expect(row.locator("progress")).to_have_attribute("aria-label", "Uploading big.txt")
    release.set()
    await expect(row).to_have_count(0)
    await expect(page.locator("#document-list .document", has_text="big.txt")).to_have_count(1)
