"""Documents in the admin: staff see every user's documents (name, owner, type, status, chunks),
share one with everyone or take the sharing back, and delete one (its chunks go with it). The
text itself is not shown: staff manage documents, they do not read users' files."""

from django.contrib import admin

from .models import KnowledgeDocument


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "shared", "file_type", "status", "chunk_count", "size", "created_at")
    list_filter = ("shared", "status", "file_type")
    list_editable = ("shared",)
    search_fields = ("name", "owner__username", "content_id")
    fields = ("content_id", "name", "owner", "shared", "file_type", "size", "status", "status_message", "pages",
              "chunk_count", "embedding_model", "created_at", "updated_at")
    readonly_fields = ("content_id", "name", "owner", "file_type", "size", "status", "status_message", "pages",
                       "chunk_count", "embedding_model", "created_at", "updated_at")
    list_select_related = ("owner",)

    def has_add_permission(self, request) -> bool:  # documents are uploaded through the API or the chat page
        return False
