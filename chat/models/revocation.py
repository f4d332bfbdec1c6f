"""Revoked access: each user's token version (the generation of their JWTs), and the signal that
ends a user's access at once in every process.

A password change, a deactivation, "log out everywhere" or a deleted account revokes access:
the user's save and delete signals below bump the token version (every token minted before is
refused) and send `access_revoked` once the change is committed. Apart from the chat sessions
and runs (chat.models.sessions): this is about who may still call, not about what they stored.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import get_hasher, identify_hasher
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import Signal, receiver

# Sent (with `user_id`) once a user's access is revoked, after the revoking transaction commits:
# their tokens' version went up (password change, deactivation, "log out everywhere") or the
# account was deleted. The run service cancels the user's live runs and the websocket transport
# closes their sockets, in every process (chat.runs.revocation, chat.ws.revocation; connected in
# chat.apps), so access ends at once, not only at the next request.
access_revoked = Signal()

def announce_revocation(user_id: int) -> None:
    """Send `access_revoked` for `user_id` when the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: access_revoked.send(sender=TokenVersion, user_id=user_id))


class TokenVersionQuerySet(models.QuerySet):
    def bump(self, user_id: int) -> None:
        """Start a new generation of `user_id`'s tokens: every token minted before is refused."""
        self._increment(user_id)
        # After the new version is written (outside a transaction, on_commit runs at once): a socket
        # told of the revocation re-checks its token against it.
        announce_revocation(user_id)

    def _increment(self, user_id: int) -> None:
        if self.filter(user_id=user_id).update(version=F("version") + 1):
            return
        try:
            with transaction.atomic():  # a savepoint: PostgreSQL aborts the transaction on a conflict
                self.create(user_id=user_id, version=1)
        except IntegrityError:  # a concurrent bump created the row first
            self.filter(user_id=user_id).update(version=F("version") + 1)


class TokenVersion(models.Model):
    """The generation of a user's JWTs. Every token carries the version it was minted under
    (chat.identity.TOKEN_VERSION_CLAIM) and is refused once this row holds another one. No row means
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


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat.access_revoked.deleted")
def _revoke_access_of_deleted_user(sender, instance, **kwargs) -> None:
    announce_revocation(instance.pk)
