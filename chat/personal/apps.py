"""The personal app: profiles and memories (a Django app of its own, so its tables and migrations
stand apart from the chat's sessions and runs)."""

from django.apps import AppConfig


class PersonalConfig(AppConfig):
    name = "chat.personal"
    label = "personal"
    verbose_name = "Profiles and memories"
    default_auto_field = "django.db.models.BigAutoField"
