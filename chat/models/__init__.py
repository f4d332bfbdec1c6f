"""chat's models: the chat sessions and runs (sessions.py), and revoked access (revocation.py:
each user's token version and the `access_revoked` signal). Imported here so Django registers
them and the rest of the code imports them from `chat.models`.
"""

from chat.payload import PayloadEncoder  # noqa: F401 - chat/migrations/0001_initial.py names it here

from .revocation import TokenVersion, access_revoked, announce_revocation
from .sessions import (
    CANCELLED_STATUS,
    COMPLETED_STATUS,
    HISTORY_SKIP_STATUSES,
    RUNNING_STATUS,
    SESSION_ID_RE,
    SESSION_SORT_FIELDS,
    ChatRun,
    ChatRunQuerySet,
    ChatSession,
    ChatSessionQuerySet,
    NamedBy,
    session_renamed,
    validate_session_id,
)

__all__ = ["CANCELLED_STATUS", "COMPLETED_STATUS", "HISTORY_SKIP_STATUSES", "RUNNING_STATUS", "SESSION_ID_RE",
           "SESSION_SORT_FIELDS", "ChatRun", "ChatRunQuerySet", "ChatSession", "ChatSessionQuerySet", "NamedBy",
           "TokenVersion", "access_revoked", "announce_revocation", "session_renamed", "validate_session_id"]
