"""The knowledge app: users' documents and their chunks (a Django app of its own, so its tables and
its vendor-specific search index stand apart from the chat's)."""

from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "chat.knowledge"
    label = "knowledge"
    verbose_name = "Documents"
    default_auto_field = "django.db.models.BigAutoField"
