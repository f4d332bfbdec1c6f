"""Settings of the servers the tests start (tests/live.py): the real ones, with the tests' quick
password hasher, so a login there costs what it costs in the test process (tests/hashers.py)."""

from cirkelline_site.settings import *  # noqa: F403

PASSWORD_HASHERS = ["tests.hashers.QuickPBKDF2PasswordHasher"]
