"""Create the admin account on first run (used by `make run`).

The password comes from CIRKELLINE_ADMIN_PASSWORD, or is generated, printed once and kept
(mode 0600) in var/admin-password so it can be read again later. A password from the
environment must pass Django's password validators (AUTH_PASSWORD_VALIDATORS), like any other.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the 'admin' superuser if no superuser exists yet."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("Admin account exists; nothing to do.")
            return
        username = settings.CIRKELLINE_ADMIN_USERNAME
        password = settings.CIRKELLINE_ADMIN_PASSWORD
        generated = not password
        if generated:
            password = secrets.token_urlsafe(18)
        else:
            try:
                validate_password(password, User(username=username))
            except ValidationError as exc:
                raise CommandError(
                    "CIRKELLINE_ADMIN_PASSWORD is too weak for the admin account: " + " ".join(exc.messages)
                    + " Choose another, or leave it empty to have one generated."
                ) from None
        User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            path = settings.VAR_DIR / "admin-password"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
            self.stdout.write(self.style.SUCCESS(
                f"Created admin account '{username}' with password: {password}\n"
                f"(shown once; also stored, readable only by you, in {path})"
            ))
        else:
            self.stdout.write(self.style.SUCCESS(
                f"Created admin account '{username}' with the password from CIRKELLINE_ADMIN_PASSWORD."
            ))
