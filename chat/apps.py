"""The chat app: sessions, runs and everything that serves them (docs/ARCHITECTURE.md has the map)."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Revoked access ends the user's live runs and closes their sockets (chat.models.access_revoked),
        # in every process that loads the app: a server, or a script such as `manage.py changepassword`.
        # A session's new name reaches the user's open sockets (chat.models.session_renamed: notices).
        from chat.runs import revocation as runs_revocation  # noqa: F401
        from chat.ws import notices  # noqa: F401
        from chat.ws import revocation as ws_revocation  # noqa: F401
