"""Create benchmark users in the target database and mint their JWTs offline.

    DJANGO_SETTINGS_MODULE=cirkelline_site.settings DATABASE_URL=... DJANGO_SECRET_KEY=... \\
        python -m bench.users --count 1000 --out tokens.txt

Run it with the *server's* environment (same ``DATABASE_URL`` and signing key, i.e.
``DJANGO_SECRET_KEY`` / ``CIRKELLINE_JWT_SIGNING_KEY`` or the same ``CIRKELLINE_VAR_DIR``), so
the server accepts the tokens. Why offline: logging 1000 users in through ``/api/token/``
would hash 1000 passwords on the server being measured. Users get unusable passwords (no
hashing at all) and are named ``bench-user-<i>``; the harness gives every concurrent run its
own user, so the per-user admission cap (``CIRKELLINE_MAX_RUNS_PER_USER``) never applies.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def create_users_and_tokens(count: int, prefix: str = "bench-user-") -> list[str]:
    """``count`` users (created if missing), one access token each, in user order."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from rest_framework_simplejwt.tokens import AccessToken

    user_model = get_user_model()
    names = [f"{prefix}{i:05d}" for i in range(count)]
    unusable = make_password(None)
    user_model.objects.bulk_create(
        [user_model(username=name, password=unusable) for name in names], ignore_conflicts=True, batch_size=500
    )
    users = {u.username: u for u in user_model.objects.filter(username__in=names)}
    return [str(AccessToken.for_user(users[name])) for name in names]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.users", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="file to write, one token per line")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    import django

    django.setup()
    tokens = create_users_and_tokens(args.count)
    args.out.write_text("\n".join(tokens) + "\n")
    print(f"bench.users: {len(tokens)} users and tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
