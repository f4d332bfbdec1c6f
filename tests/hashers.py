"""A quick password hasher for the tests' users (Django's advice: the default's hashing dominates a suite)."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's default hasher with 1,000 iterations instead of 1,000,000: the same algorithm and
    format, and it checks a hash of any iteration count (a server's on the real settings, the
    admin's that manage.py ensure_admin made)."""

    iterations = 1_000
