"""A user's documents and their chunks, and the queries over them, every one filtered in its SQL
to what the user may see: their own documents, and those staff shared with everyone.

`KnowledgeDocument` is one uploaded file (its name, type, size, processing status); its text is
kept only as `KnowledgeChunk` rows (a few hundred words each, in order), which the search ranks
(chat.knowledge.search) and which go with their document when it is deleted. A chunk's
`embedding` (float32 bytes, chat.knowledge.vectors) is set when an embedding model is configured.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import Q
from django.utils.timezone import now

from chat.errors import CirkellineError


def new_content_id() -> str:
    return str(uuid.uuid4())


class DocumentStatus(models.TextChoices):
    """AgentOS' content statuses (agno.os.routers.knowledge.schemas.ContentStatus)."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


INTERRUPTED = "Processing was interrupted (the server restarted); upload the file again."


class DocumentsFull(CirkellineError):
    """The user keeps CIRKELLINE_KNOWLEDGE_MAX_DOCUMENTS documents already."""

    status = 409

    def __init__(self) -> None:
        super().__init__(detail=f"You have {settings.CIRKELLINE_KNOWLEDGE_MAX_DOCUMENTS} documents, the most "
                                "Cirkelline keeps: delete some before uploading more.")


def visible_to(user_pk: int) -> Q:
    """The documents a user may read: their own and the shared ones."""
    return Q(owner_id=user_pk) | Q(shared=True)


class DocumentQuerySet(models.QuerySet):
    """Every read names its reader (`visible`) and every change its owner (`owned_by`)."""

    def visible(self, user_pk: int) -> DocumentQuerySet:
        return self.filter(visible_to(user_pk))

    def owned_by(self, user_pk: int) -> DocumentQuerySet:
        return self.filter(owner_id=user_pk)

    def fail_interrupted(self) -> int:
        """Documents still `processing` long after their upload (their process died mid-way) are
        marked failed, so a status never says `processing` forever."""
        cutoff = now() - timedelta(seconds=settings.CIRKELLINE_KNOWLEDGE_PROCESS_TIMEOUT)
        return self.filter(status=DocumentStatus.PROCESSING, updated_at__lt=cutoff).update(
            status=DocumentStatus.FAILED, status_message=INTERRUPTED, updated_at=now())

    def page(self, user_pk: int, *, limit: int, page: int, sort_by: str, ascending: bool) -> tuple[list, int]:
        """One page of the documents the user may read, and how many there are in all."""
        self.fail_interrupted()
        qs = self.visible(user_pk)
        order = (sort_by, "id") if ascending else (f"-{sort_by}", "-id")
        offset = (max(page, 1) - 1) * limit
        return list(qs.order_by(*order)[offset:offset + limit]), qs.count()

    def one(self, user_pk: int, content_id: str) -> KnowledgeDocument | None:
        self.fail_interrupted()
        return self.visible(user_pk).filter(content_id=content_id).first()

    def remove(self, user_pk: int, content_id: str, *, is_staff: bool) -> str:
        """Delete a document with its chunks: 'deleted', 'shared' (someone else's shared document,
        which only staff may delete) or 'missing' (not there, or private and not the user's)."""
        doc = self.visible(user_pk).filter(content_id=content_id).first()
        if doc is None:
            return "missing"
        if doc.owner_id != user_pk and not is_staff:
            return "shared"
        doc.delete()  # its chunks by CASCADE (and their search index rows by trigger on SQLite)
        return "deleted"

    def change(self, user_pk: int, content_id: str, *, is_staff: bool, changes: dict) -> KnowledgeDocument | str:
        """Change a document's name, description, metadata or (staff) sharing: the document, or
        'missing' (not there, or private and not the user's; staff reach every document, as in the
        admin) or 'shared' (someone else's shared document, which only staff may change)."""
        with transaction.atomic():
            # Staff may change (share) any document, as in the admin; others their own, and see shared ones.
            found = self.select_for_update() if is_staff else self.select_for_update().visible(user_pk)
            doc = found.filter(content_id=content_id).first()
            if doc is None:
                return "missing"
            if doc.owner_id != user_pk and not is_staff:
                return "shared"
            for name, value in changes.items():
                setattr(doc, name, value)
            doc.updated_at = now()
            doc.save(update_fields=[*changes, "updated_at"])
        return doc

    def start(self, user_pk: int, *, name: str, description: str, file_type: str, size: int, shared: bool,
              metadata: dict) -> KnowledgeDocument:
        """A new document of the user's, `processing`; DocumentsFull at CIRKELLINE_KNOWLEDGE_MAX_DOCUMENTS."""
        with transaction.atomic():
            # The owner's row locked: two uploads at once cannot both take the last place.
            get_user_model().objects.select_for_update().filter(pk=user_pk).first()
            if self.owned_by(user_pk).count() >= settings.CIRKELLINE_KNOWLEDGE_MAX_DOCUMENTS:
                raise DocumentsFull()
            return self.create(owner_id=user_pk, name=name, description=description, file_type=file_type, size=size,
                               shared=shared, metadata=metadata)

    def complete(self, doc_pk: int, chunks: list, *, pages: int, embeddings: list[bytes] | None = None,
                 embedding_model: str = "", note: str = "") -> bool:
        """Store a document's chunks and mark it completed, in one transaction; False if it was
        deleted meanwhile (nothing is stored)."""
        with transaction.atomic():
            doc = self.select_for_update().filter(pk=doc_pk, status=DocumentStatus.PROCESSING).first()
            if doc is None:
                return False
            KnowledgeChunk.objects.bulk_create(
                [KnowledgeChunk(document=doc, position=c.position, page=c.page, text=c.text,
                                embedding=embeddings[i] if embeddings else None) for i, c in enumerate(chunks)],
                batch_size=500)
            self.filter(pk=doc_pk).update(status=DocumentStatus.COMPLETED, status_message=note, pages=pages,
                                          chunk_count=len(chunks), embedding_model=embedding_model if embeddings
                                          else "", updated_at=now())
        return True

    def fail(self, doc_pk: int, message: str) -> None:
        self.filter(pk=doc_pk, status=DocumentStatus.PROCESSING).update(
            status=DocumentStatus.FAILED, status_message=message[:2000], updated_at=now())


class KnowledgeDocument(models.Model):
    content_id = models.CharField(max_length=64, unique=True, default=new_content_id)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="knowledge_documents")
    # Shared by staff: every user's search and list see it; only staff may delete it.
    shared = models.BooleanField(default=False)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    file_type = models.CharField(max_length=100)  # the MIME type the content was read as
    size = models.PositiveBigIntegerField(default=0)  # bytes uploaded
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.PROCESSING)
    status_message = models.TextField(blank=True, default="")
    pages = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    # The embedding model its chunks were embedded with ("" when they were not).
    embedding_model = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="knowledge_doc_owner_recent"),
            models.Index(fields=["shared"], name="knowledge_doc_shared", condition=Q(shared=True)),
        ]

    def __str__(self) -> str:
        return self.name


class ChunkQuerySet(models.QuerySet):
    def visible(self, user_pk: int) -> ChunkQuerySet:
        """Chunks of completed documents the user may read (the filter is part of every query)."""
        return self.filter(Q(document__owner_id=user_pk) | Q(document__shared=True),
                           document__status=DocumentStatus.COMPLETED)


class KnowledgeChunk(models.Model):
    document = models.ForeignKey(KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()  # 0, 1, ... in the document's order; cited as position + 1
    page = models.PositiveIntegerField(null=True, blank=True)  # the PDF page it starts on
    text = models.TextField()
    embedding = models.BinaryField(null=True, blank=True)

    objects = ChunkQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["document", "position"],
                                               name="knowledge_one_chunk_per_position")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"
