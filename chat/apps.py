"""The chat app: sessions, runs and everything that serves them (docs/ARCHITECTURE.md has the map)."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"
