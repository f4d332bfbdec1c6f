"""AgentOS' knowledge routes over Cirkelline's documents: upload (PDF, DOCX, Markdown, HTML, text),
background processing with a status, list, read, delete with the chunks, search; always the
caller's own documents plus the ones staff shared, the filter inside the query."""

from __future__ import annotations

import pytest

from chat.knowledge.models import DocumentStatus, KnowledgeChunk, KnowledgeDocument
from chat.runs.knowledge import settle_processing
from tests.api.test_openapi import assert_conforms
from tests.conftest import adb, bearer, error_body
from tests.knowledge import files

pytestmark = pytest.mark.django_db(transaction=True)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def upload(api, user, name, content, content_type="application/octet-stream", expect=202, **fields):
    response = await api.post("/knowledge/content", files={"file": (name, content, content_type)},
                              data=fields, headers=bearer(user))
    assert response.status_code == expect, response.text
    assert_conforms("/knowledge/content", "post", expect, response.json())
    return response.json()


async def processed(api, user, content_id):
    await settle_processing(30)
    response = await api.get(f"/knowledge/content/{content_id}/status", headers=bearer(user))
    assert response.status_code == 200, response.text
    assert_conforms("/knowledge/content/{content_id}/status", "get", 200, response.json())
    return response.json()


async def search(api, user, query, **params):
    response = await api.get("/knowledge/search", params={"query": query, **params}, headers=bearer(user))
    assert response.status_code == 200, response.text
    assert_conforms("/knowledge/search", "get", 200, response.json())
    return response.json()


def chunks_of(content_id):
    return list(KnowledgeChunk.objects.filter(document__content_id=content_id).order_by("position")
                .values_list("position", "page", "text"))


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", password="staff-password-1", is_staff=True)


async def test_alice_uploads_each_type_and_it_is_read_chunked_and_listed(api, alice):
    uploads = [
        ("handbook.pdf", files.pdf(["Holidays: 25 days a year.", "Notice period: three months."], compress=True),
         "application/pdf", "application/pdf"),
        ("minutes.docx", files.docx(["The board met on Monday.", "Budget approved."]), DOCX, DOCX),
        ("notes.md", b"# Garden\n\nPlant the tulips in October.", "text/markdown", "text/markdown"),
        ("page.html", b"<html><head><title>x</title><script>var secret=1</script></head><body><p>Bread needs "
                      b"flour and water.</p></body></html>", "text/html", "text/html"),
        ("plain.txt", "Ærø is an island; the ferry leaves at nine.".encode(), "text/plain", "text/plain"),
    ]
    ids = {}
    for name, content, declared, expected in uploads:
        body = await upload(api, alice, name, content, declared, description="mine")
        assert body["status"] == "processing" and body["name"] == name and body["type"] == expected
        assert body["description"] == "mine" and body["size"] == str(len(content))
        ids[name] = body["id"]
    for name, content_id in ids.items():
        status = await processed(api, alice, content_id)
        assert status == {"id": content_id, "status": "completed", "status_message": ""}, name

    pdf_chunks = await adb(chunks_of, ids["handbook.pdf"])
    assert [(p, page) for p, page, _ in pdf_chunks] == [(0, 1), (1, 2)]
    assert "three months" in pdf_chunks[1][2]
    html_text = (await adb(chunks_of, ids["page.html"]))[0][2]
    assert html_text == "Bread needs flour and water." and "secret" not in html_text

    listed = (await api.get("/knowledge/content", headers=bearer(alice))).json()
    assert [d["id"] for d in listed["data"]] == list(reversed(ids.values()))  # newest first
    assert listed["meta"]["total_count"] == 5 and listed["meta"]["page"] == 1
    assert_conforms("/knowledge/content", "get", 200, listed)
    first = listed["data"][-1]
    assert first["type"] == "application/pdf" and first["pages"] == 2 and first["chunks"] == 2
    assert first["owned"] is True and first["shared"] is False and first["created_at"].endswith("Z")
    detail = await api.get(f"/knowledge/content/{ids['plain.txt']}", headers=bearer(alice))
    assert detail.status_code == 200 and detail.json()["status"] == "completed"
    assert_conforms("/knowledge/content/{content_id}", "get", 200, detail.json())


async def test_text_content_is_a_document_too(api, alice):
    response = await api.post("/knowledge/content", data={"text_content": "Pasta needs salted water.",
                                                          "name": "Cooking"}, headers=bearer(alice))
    assert response.status_code == 202
    assert (await processed(api, alice, response.json()["id"]))["status"] == "completed"
    found = await search(api, alice, "salted pasta")
    assert [h["name"] for h in found["data"]] == ["Cooking"]


async def test_search_ranks_the_callers_chunks_and_cites_document_and_chunk(api, alice):
    a = await upload(api, alice, "contract.txt", b"The notice period is three months for either party.")
    b = await upload(api, alice, "recipe.txt", b"Whisk three eggs with sugar until pale.")
    await processed(api, alice, a["id"])
    await processed(api, alice, b["id"])
    found = await search(api, alice, "What is the notice period?")
    assert [h["content_id"] for h in found["data"]] == [a["id"]]
    hit = found["data"][0]
    assert hit["name"] == "contract.txt" and "three months" in hit["content"]
    assert hit["meta_data"] == {"document_id": a["id"], "document": "contract.txt", "chunk": 1, "page": None,
                                "shared": False}
    assert found["meta"]["total_count"] == 1 and "search_time_ms" in found["meta"]
    posted = await api.post("/knowledge/search", json={"query": "eggs sugar", "meta": {"limit": 5}},
                            headers=bearer(alice))
    assert posted.status_code == 200 and [h["content_id"] for h in posted.json()["data"]] == [b["id"]]


async def test_bob_never_sees_alices_private_document(api, alice, bob):
    """Guards against the owner filter applied after ranking, or not at all."""
    doc = await upload(api, alice, "diary.txt", b"My secret password is tangerine.")
    await processed(api, alice, doc["id"])
    assert (await search(api, bob, "secret password tangerine"))["data"] == []
    assert (await api.get("/knowledge/content", headers=bearer(bob))).json()["data"] == []
    for path in (f"/knowledge/content/{doc['id']}", f"/knowledge/content/{doc['id']}/status"):
        response = await api.get(path, headers=bearer(bob))
        assert response.status_code == 404 and error_body(response) == {"detail": "Content not found."}
    assert (await api.delete(f"/knowledge/content/{doc['id']}", headers=bearer(bob))).status_code == 404
    assert await adb(KnowledgeDocument.objects.filter(content_id=doc["id"]).exists)
    assert [h["content_id"] for h in (await search(api, alice, "tangerine"))["data"]] == [doc["id"]]


async def test_a_limit_is_never_filled_with_others_chunks(api, alice, bob):
    """Many of bob's chunks match better; alice still gets hers (the filter is in the ranking query)."""
    for i in range(12):
        d = await upload(api, bob, f"bob{i}.txt", b"zebra zebra zebra zebra stripes")
        await processed(api, bob, d["id"])
    mine = await upload(api, alice, "mine.txt", b"One zebra in the zoo.")
    await processed(api, alice, mine["id"])
    found = await search(api, alice, "zebra", max_results=3)
    assert [h["content_id"] for h in found["data"]] == [mine["id"]]


async def test_staff_share_a_document_everyone_finds_it_only_staff_delete_it(api, alice, bob, staff):
    refused = await api.post("/knowledge/content", data={"text_content": "x", "shared": "true"},
                             headers=bearer(alice))
    assert refused.status_code == 403
    doc = await upload(api, staff, "policy.txt", b"Office hours are nine to five.", shared="true")
    await processed(api, staff, doc["id"])
    for user in (alice, bob):
        found = await search(api, user, "office hours")
        assert [h["content_id"] for h in found["data"]] == [doc["id"]]
        assert found["data"][0]["meta_data"]["shared"] is True
        listed = (await api.get("/knowledge/content", headers=bearer(user))).json()["data"]
        assert [(d["id"], d["shared"], d["owned"]) for d in listed] == [(doc["id"], True, False)]
    response = await api.delete(f"/knowledge/content/{doc['id']}", headers=bearer(alice))
    assert response.status_code == 403
    assert (await api.delete(f"/knowledge/content/{doc['id']}", headers=bearer(staff))).status_code == 200
    assert (await search(api, alice, "office hours"))["data"] == []


async def test_delete_removes_the_document_and_its_chunks_and_their_index(api, alice):
    doc = await upload(api, alice, "long.txt", ("Lighthouse keepers log the weather. " * 200).encode())
    await processed(api, alice, doc["id"])
    assert len(await adb(chunks_of, doc["id"])) > 3
    response = await api.delete(f"/knowledge/content/{doc['id']}", headers=bearer(alice))
    assert response.status_code == 200 and response.json() == {"id": doc["id"]}
    assert await adb(KnowledgeChunk.objects.count) == 0
    assert (await search(api, alice, "lighthouse weather"))["data"] == []
    assert (await api.get(f"/knowledge/content/{doc['id']}", headers=bearer(alice))).status_code == 404


async def test_refusals_are_clear_4xx_and_store_nothing(api, alice, settings):
    settings.CIRKELLINE_KNOWLEDGE_MAX_BYTES = 1000
    cases = [
        (await api.post("/knowledge/content", files={"file": ("big.txt", b"a" * 1001, "text/plain")},
                        headers=bearer(alice)), 413, "too large"),
        (await api.post("/knowledge/content", files={"file": ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00", "image/png")},
                        headers=bearer(alice)), 415, "not a supported document"),
        (await api.post("/knowledge/content", files={"file": ("empty.txt", b"", "text/plain")},
                        headers=bearer(alice)), 400, "empty"),
        (await api.post("/knowledge/content", data={"url": "https://example.com"}, headers=bearer(alice)), 400,
         "does not fetch"),
        (await api.post("/knowledge/content", data={}, headers=bearer(alice)), 400, "Provide a file"),
        (await api.post("/knowledge/content", json={"text_content": "x"}, headers=bearer(alice)), 415, "multipart"),
        (await api.post("/knowledge/content", data={"text_content": "x", "metadata": "[1]"}, headers=bearer(alice)),
         400, "JSON object"),
        (await api.post("/knowledge/content", data={"text_content": "x", "colour": "red"}, headers=bearer(alice)),
         400, "Unknown field"),
        (await api.get("/knowledge/search", headers=bearer(alice)), 400, "'query' is required"),
        (await api.get("/knowledge/content?limit=0", headers=bearer(alice)), 400, "'limit'"),
        (await api.get("/knowledge/content"), 401, ""),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (response.text, status)
        assert words in response.json()["detail"], response.text
    assert await adb(KnowledgeDocument.objects.count) == 0


async def test_a_document_that_fails_to_read_says_why(api, alice):
    doc = await upload(api, alice, "broken.pdf", b"%PDF-1.4\nthis is not really a pdf")
    status = await processed(api, alice, doc["id"])
    assert status["status"] == "failed" and "could not be read" in status["status_message"]
    assert await adb(KnowledgeChunk.objects.count) == 0


async def test_a_document_stuck_processing_is_reported_failed(api, alice, settings):
    """A process that died mid-way leaves `processing`; a read past the timeout says failed."""
    from datetime import timedelta

    from django.utils.timezone import now

    doc = await adb(KnowledgeDocument.objects.create, owner=alice, name="x.txt", file_type="text/plain",
                    updated_at=now() - timedelta(seconds=settings.CIRKELLINE_KNOWLEDGE_PROCESS_TIMEOUT + 1))
    status = await processed(api, alice, doc.content_id)
    assert status["status"] == DocumentStatus.FAILED and "interrupted" in status["status_message"]


async def test_a_users_documents_are_bounded(api, alice, settings):
    settings.CIRKELLINE_KNOWLEDGE_MAX_DOCUMENTS = 2
    for i in range(2):
        await upload(api, alice, f"{i}.txt", b"text")
    response = await api.post("/knowledge/content", files={"file": ("3.txt", b"text", "text/plain")},
                              headers=bearer(alice))
    assert response.status_code == 409 and "delete some" in response.json()["detail"]


async def test_patch_changes_a_document_only_its_owner_or_staff_may(api, alice, bob, staff):
    doc = await upload(api, alice, "draft.txt", b"Canteen soup on Fridays.")
    await processed(api, alice, doc["id"])
    changed = await api.patch(f"/knowledge/content/{doc['id']}", data={"name": "Canteen", "description": "menu",
                                                                       "metadata": '{"team": "ops"}'},
                              headers=bearer(alice))
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["description"], changed.json()["metadata"]) == \
        ("Canteen", "menu", {"team": "ops"})
    assert_conforms("/knowledge/content/{content_id}", "patch", 200, changed.json())
    assert (await api.patch(f"/knowledge/content/{doc['id']}", data={"name": "x"},
                            headers=bearer(bob))).status_code == 404
    refused = await api.patch(f"/knowledge/content/{doc['id']}", data={"shared": "true"}, headers=bearer(alice))
    assert refused.status_code == 403
    assert (await search(api, bob, "canteen soup"))["data"] == []

    shared = await api.patch(f"/knowledge/content/{doc['id']}", data={"shared": "true"}, headers=bearer(staff))
    assert shared.status_code == 200 and shared.json()["shared"] is True
    assert [h["name"] for h in (await search(api, bob, "canteen soup"))["data"]] == ["Canteen"]
    # now shared by staff: bob reads it but may not change it
    assert (await api.patch(f"/knowledge/content/{doc['id']}", data={"name": "mine"},
                            headers=bearer(bob))).status_code == 403
    assert (await adb(KnowledgeDocument.objects.get, content_id=doc["id"])).name == "Canteen"
