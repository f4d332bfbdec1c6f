"""A user's profile: display name, timezone, custom instructions and the memory switch; and,
from chat.personal.memories, what Cirkelline remembers about each user.

A profile row is created lazily, by the first change (`Profile.objects.change`); until then the
user has the defaults (`DEFAULTS`): no display name, UTC, no custom instructions, memories off.
Runs read it with their session claim (chat.storage.buffer), not with a query of their own.
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from chat.errors import BadRequest
from chat.payload import check_text

DISPLAY_NAME_MAX = 100
TIMEZONE_MAX = 64
# What a user has before they change anything (and what a missing row reads as).
DEFAULTS: dict[str, Any] = {"display_name": "", "timezone": "UTC", "custom_instructions": "",
                            "memories_enabled": False}
FIELDS = tuple(DEFAULTS)


@functools.cache
def timezones() -> frozenset[str]:
    """The IANA timezone names this server knows (the system's database, or the tzdata package)."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _text(changes: dict, name: str, limit: int, *, lines: bool) -> str:
    value = changes[name]
    if not isinstance(value, str):
        raise BadRequest(400, f"'{name}' must be a string.")
    check_text(f"'{name}'", value)
    if len(value) > limit:
        raise BadRequest(413, f"'{name}' is too long: the limit is {limit} characters.")
    allowed = "\n\t" if lines else ""
    if any(ord(ch) < 32 and ch not in allowed for ch in value):
        raise BadRequest(400, f"'{name}' contains control characters" + (" (other than new lines and tabs)."
                                                                          if lines else "."))
    return value.strip()


def clean_changes(changes: Any) -> dict[str, Any]:
    """The profile fields a PATCH sets, checked (BadRequest naming the field otherwise)."""
    if not isinstance(changes, dict):
        raise BadRequest(400, "The body must be a JSON object.")
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise BadRequest(400, f"Unknown field '{str(unknown[0])[:40]}': a profile has {', '.join(FIELDS)}.")
    cleaned: dict[str, Any] = {}
    if "display_name" in changes:
        cleaned["display_name"] = _text(changes, "display_name", DISPLAY_NAME_MAX, lines=False)
    if "timezone" in changes:
        name = changes["timezone"]
        if not isinstance(name, str) or name.strip() not in timezones():
            raise BadRequest(400, "'timezone' must be an IANA timezone name such as Europe/Copenhagen or UTC.")
        cleaned["timezone"] = name.strip()
    if "custom_instructions" in changes:
        cleaned["custom_instructions"] = _text(changes, "custom_instructions",
                                               settings.CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX, lines=True)
    if "memories_enabled" in changes:
        if not isinstance(changes["memories_enabled"], bool):
            raise BadRequest(400, "'memories_enabled' must be true or false.")
        cleaned["memories_enabled"] = changes["memories_enabled"]
    return cleaned


class ProfileQuerySet(models.QuerySet):
    def of(self, user_pk: int) -> dict[str, Any]:
        """The user's profile as the API shows it (the defaults if they never changed it)."""
        row = self.filter(user_id=user_pk).values(*FIELDS, "updated_at").first()
        return row or {**DEFAULTS, "updated_at": None}

    def change(self, user_pk: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Set the fields `changes` names (already checked: clean_changes); the profile after."""
        if changes:
            self.update_or_create(user_id=user_pk, defaults={**changes, "updated_at": now()})
        return self.of(user_pk)


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="cirkelline_profile")
    display_name = models.CharField(max_length=DISPLAY_NAME_MAX, blank=True, default="")
    timezone = models.CharField(max_length=TIMEZONE_MAX, default="UTC")
    # Bounded by CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX when set (clean_changes), not by the column.
    custom_instructions = models.TextField(blank=True, default="")
    memories_enabled = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=now)

    objects = ProfileQuerySet.as_manager()

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


# The memories' models live in a module of their own; Django finds them through this one.
from .memories import MemoryTopic, UserMemory  # noqa: E402, F401
