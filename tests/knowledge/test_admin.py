"""Staff share a user's document with everyone from the admin, and every user's search finds it."""

from __future__ import annotations

import pytest

from chat.knowledge.chunking import chunk_pages
from chat.knowledge.models import KnowledgeChunk, KnowledgeDocument
from chat.knowledge.search import lexical

pytestmark = pytest.mark.django_db


def stored(user, name, text):
    doc = KnowledgeDocument.objects.start(user.pk, name=name, description="", file_type="text/plain",
                                          size=len(text), shared=False, metadata={})
    KnowledgeDocument.objects.complete(doc.pk, chunk_pages([text], paged=False), pages=1)
    return KnowledgeDocument.objects.get(pk=doc.pk)


def test_staff_share_a_document_from_the_change_list_and_delete_one(client, django_user_model, alice, bob):
    staff = django_user_model.objects.create_superuser("boss", password="boss-password-1")
    doc = stored(alice, "canteen.txt", "The canteen serves soup on Fridays.")
    assert lexical(bob.pk, "canteen soup", limit=5) == []
    client.force_login(staff)
    listed = client.get("/admin/knowledge/knowledgedocument/")
    assert listed.status_code == 200 and b"canteen.txt" in listed.content and b"soup" not in listed.content
    response = client.post("/admin/knowledge/knowledgedocument/", {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(doc.pk), "form-0-shared": "on",
        "_save": "Save"})
    assert response.status_code == 302
    assert [h.document for h in lexical(bob.pk, "canteen soup", limit=5)] == ["canteen.txt"]

    response = client.post(f"/admin/knowledge/knowledgedocument/{doc.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not KnowledgeDocument.objects.exists() and not KnowledgeChunk.objects.exists()
