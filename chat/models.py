"""Chat sessions and runs, as agno stores them (indexed columns + the JSON payload), and each
user's token version (the generation of their JWTs).

A session belongs to one user. Its `data` holds what agno keeps on the session (session
state, session metrics, team data, metadata, summary) but never its runs: runs are rows of
their own, one per team run and one per member run, so listing sessions never touches run
payloads and loading history reads only the last few top-level runs.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import re

from django.conf import settings
from django.contrib.auth.hashers import get_hasher, identify_hasher
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


# UTF-16 surrogate escapes in JSON text: a pair (one astral character, e.g. an emoji) or a lone half.
_SURROGATE_ESCAPE = re.compile(r"\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|\\ud[89a-f][0-9a-f]{2}", re.IGNORECASE)


def _has_lone_surrogate_escape(json_text: str) -> bool:
    return any(len(match.group()) == 6 for match in _SURROGATE_ESCAPE.finditer(json_text))


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a lone UTF-16 surrogate (then it has no UTF-8 form)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _storable_text(value: str) -> str:
    value = value.replace("\x00", "\ufffd")
    if has_lone_surrogate(value):
        value = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value


def storable(value):
    """`value` with what a database cannot hold replaced: NUL characters (PostgreSQL text and
    jsonb reject them) and lone surrogates (no UTF-8 form) become U+FFFD, NaN/Infinity (not
    JSON) become None."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable(k) if isinstance(k, str) else k: storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


class PayloadEncoder(DjangoJSONEncoder):
    """JSON for agno payloads: enums by value, bytes as base64, dataclasses and models as dicts.

    The output is always storable on PostgreSQL too: a model answer with a NUL character or a
    tool result with NaN would otherwise make the run's final write fail. Checking costs a
    substring search or two; only a payload that needs it is cleaned and encoded again.
    """

    def __init__(self, *args, **kwargs):
        kwargs["allow_nan"] = False  # NaN/Infinity are not JSON; PostgreSQL refuses them
        super().__init__(*args, **kwargs)

    def encode(self, o):
        try:
            text = super().encode(o)
        except ValueError:  # NaN or Infinity somewhere
            text = None
        if text is None or "\\u0000" in text or ("\\ud" in text and _has_lone_surrogate_escape(text)):
            text = super().encode(storable(json.loads(json.dumps(o, default=self.default))))
        return text

    def default(self, o):
        if isinstance(o, enum.Enum):
            return o.value
        if isinstance(o, (bytes, bytearray)):
            return base64.b64encode(bytes(o)).decode("ascii")
        if isinstance(o, (set, frozenset)):
            return list(o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if hasattr(o, "model_dump"):
            return o.model_dump(mode="json")
        try:
            return super().default(o)
        except TypeError:
            return str(o)


class ChatSession(models.Model):
    session_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    session_type = models.CharField(max_length=16, default="team")
    team_id = models.CharField(max_length=64, blank=True, default="")
    session_name = models.CharField(max_length=255, blank=True, default="")
    data = models.JSONField(default=dict, encoder=PayloadEncoder)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "-updated_at"], name="chat_session_user_recent")]

    def __str__(self) -> str:
        return self.session_name or self.session_id


class ChatRun(models.Model):
    run_id = models.CharField(max_length=64, unique=True)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_runs")
    # Set on member runs: the team run that delegated to the member.
    parent_run_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    run_type = models.CharField(max_length=16)  # "team" or "agent"
    component_id = models.CharField(max_length=64, blank=True, default="")  # team_id or agent_id
    status = models.CharField(max_length=16, db_index=True)
    run_index = models.IntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict, encoder=PayloadEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["session", "parent_run_id", "id"], name="chat_run_history")]

    def __str__(self) -> str:
        return self.run_id


class TokenVersionQuerySet(models.QuerySet):
    def bump(self, user_id: int) -> None:
        """Start a new generation of `user_id`'s tokens: every token minted before is refused."""
        if self.filter(user_id=user_id).update(version=F("version") + 1):
            return
        try:
            with transaction.atomic():  # a savepoint: PostgreSQL aborts the transaction on a conflict
                self.create(user_id=user_id, version=1)
        except IntegrityError:  # a concurrent bump created the row first
            self.filter(user_id=user_id).update(version=F("version") + 1)


class TokenVersion(models.Model):
    """The generation of a user's JWTs. Every token carries the version it was minted under
    (chat.auth.TOKEN_VERSION_CLAIM) and is refused once this row holds another one. No row means
    version 0, so users need no row until their first password change or deactivation."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="token_version")
    version = models.PositiveIntegerField(default=0)

    objects = TokenVersionQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.user_id}: v{self.version}"


# Revocation lives on the user model's save signals so that every way of changing a password or
# deactivating (the admin, `manage.py changepassword`, set_password + save, a shell) revokes,
# in whichever process it happens. Queryset .update() calls bypass signals: use save().
_REVOKING_FIELDS = frozenset({"password", "is_active"})


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat.token_version.note")
def _note_credential_change(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    instance._revoke_tokens = False
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not _REVOKING_FIELDS.intersection(update_fields):
        return  # e.g. update_last_login: no extra query
    old = sender._default_manager.filter(pk=instance.pk).values_list("password", "is_active").first()
    if old is None:
        return
    new_password = old[0] != instance.password and not _is_rehash(instance, old[0])
    instance._revoke_tokens = new_password or old[1] != instance.is_active


def _is_rehash(instance, old_hash: str) -> bool:
    """Whether a new hash is Django re-hashing the same password at login (check_password's
    setter, after a hasher upgrade). Otherwise a user's first login after an upgrade would revoke
    the token that very login mints. The setter clears `_password` (set_password sets it), and it
    only runs when the old hash needed updating; anything else with a new hash is a change."""
    if getattr(instance, "_password", None) is not None or not instance.has_usable_password():
        return False
    try:
        old_hasher = identify_hasher(old_hash)
    except ValueError:
        return False
    preferred = get_hasher("default")
    return old_hasher.algorithm != preferred.algorithm or preferred.must_update(old_hash)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat.token_version.bump")
def _revoke_tokens_after_credential_change(sender, instance, raw=False, **kwargs) -> None:
    # After the save, never before: a login racing the change must not read the new version
    # together with the old password hash.
    if getattr(instance, "_revoke_tokens", False):
        instance._revoke_tokens = False
        TokenVersion.objects.bump(instance.pk)
