"""The token routes: log in, refresh (rotated), log out, revocation, and the database being down."""

from __future__ import annotations

from contextlib import contextmanager

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import make_password
from django.db import OperationalError, connections
from django.db.backends.utils import CursorWrapper
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from chat.models import TokenVersion
from tests.conftest import adb, bearer
from tests.live import live_server
from tests.outage import break_database, repair_database

pytestmark = pytest.mark.django_db(transaction=True)

ALICE = {"username": "alice", "password": "alice-password-1"}


async def _login(api, credentials=ALICE) -> dict:
    response = await api.post("/api/token/", json=credentials)
    assert response.status_code == 200, response.text
    return response.json()


def _auth(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


def _change_password(user, password: str) -> None:
    user.set_password(password)
    user.save()


async def test_a_deleted_users_refresh_token_is_401_not_500(api, alice):
    """Guards against simplejwt's User.objects.get() raising DoesNotExist (a 500) on refresh."""
    tokens = await _login(api)
    await adb(alice.delete)
    response = await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert response.status_code == 401, response.text
    assert response.json()["detail"]
    assert "access" not in response.json()


async def test_a_password_change_revokes_every_token_at_once(api, alice):
    """Guards against tokens outliving a password change: the old access token kept working and
    the old refresh token (7 days) kept minting access tokens."""
    tokens = await _login(api)
    legacy = bearer(alice)  # minted without a version claim (as before this change): generation 0
    assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 200
    assert (await api.get("/sessions", headers=legacy)).status_code == 200

    await adb(_change_password, alice, "a-new-password-2")

    for headers in (_auth(tokens["access"]), legacy):
        refused = await api.get("/sessions", headers=headers)
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    stale = await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert stale.status_code == 401 and "access" not in stale.json()
    assert (await api.post("/api/token/", json=ALICE)).status_code == 401
    fresh = await _login(api, {"username": "alice", "password": "a-new-password-2"})
    assert (await api.get("/sessions", headers=_auth(fresh["access"]))).status_code == 200
    assert await adb(lambda: TokenVersion.objects.get(user=alice).version) == 1


async def test_deactivation_revokes_at_once_and_reactivation_does_not_revive_old_tokens(api, alice):
    """Guards against the ~30 s a deactivated user's token kept working (a per-process user cache)
    and against an old token coming back to life when the account is re-enabled."""
    tokens = await _login(api)
    assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 200

    alice.is_active = False
    await adb(alice.save)
    assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 401
    assert (await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})).status_code == 401

    alice.is_active = True
    await adb(alice.save)
    assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 401
    assert (await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})).status_code == 401
    assert (await api.get("/sessions", headers=_auth((await _login(api))["access"]))).status_code == 200


async def test_saving_other_fields_or_a_new_user_revokes_nothing(api, alice, django_user_model):
    """Guards against a version bump on every save (each profile edit would log the user out)."""
    tokens = await _login(api)
    alice.email = "alice@example.com"
    await adb(alice.save)
    await adb(lambda: django_user_model.objects.create_user("carol", password="carol-password-1"))
    assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 200
    assert await adb(TokenVersion.objects.count) == 0


async def test_disabling_password_login_revokes(api, alice, settings, django_user_model):
    """Guards against treating every new hash without set_password() as Django's rehash: an
    admin's "disable password-based authentication" (set_unusable_password) must revoke, even
    when the hash it replaces is one Django would have upgraded."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher",
                                 "django.contrib.auth.hashers.MD5PasswordHasher"]
    tokens = await _login(api)
    upgradable = make_password("alice-password-1", hasher="md5")  # a hash Django would rehash
    await adb(lambda: django_user_model.objects.filter(pk=alice.pk).update(password=upgradable))
    alice.set_unusable_password()
    await adb(alice.save)
    assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 401


async def test_a_password_rehash_at_login_revokes_nothing(api, alice, settings, django_user_model):
    """Guards against Django's rehash at login (same password, upgraded hasher) counting as a
    password change: the token that very login mints would be refused at once."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher",
                                 "django.contrib.auth.hashers.MD5PasswordHasher"]
    old_hash = make_password("alice-password-1", hasher="md5")
    await adb(lambda: django_user_model.objects.filter(pk=alice.pk).update(password=old_hash))
    tokens = await _login(api)
    stored = await adb(lambda: django_user_model.objects.get(pk=alice.pk).password)
    assert stored.startswith("pbkdf2_sha256$")  # the login did rehash it
    assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 200
    assert await adb(TokenVersion.objects.count) == 0


async def test_a_login_racing_a_password_change_gets_tokens_that_are_refused(api, alice, monkeypatch):
    """Guards against reading the token version after the password check: a login with the old
    password that loses a race with a password change would get tokens of the new generation."""
    checked = ModelBackend.authenticate

    def authenticate_then_change(self, request, username=None, password=None, **kwargs):
        user = checked(self, request, username=username, password=password, **kwargs)
        _change_password(get_user_model().objects.get(pk=user.pk), "a-new-password-2")
        return user

    monkeypatch.setattr(ModelBackend, "authenticate", authenticate_then_change)
    tokens = await _login(api)
    monkeypatch.undo()
    assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 401
    assert (await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})).status_code == 401


@pytest.mark.live
async def test_a_password_change_in_another_process_revokes_at_once(alice):
    """Guards against process-local trust in a user: a server process that has just accepted a
    token must refuse it as soon as another process (an admin's `manage.py changepassword`, here
    this test process) changes the password."""
    with live_server() as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            tokens = (await client.post("/api/token/", json=ALICE)).json()
            assert (await client.get("/sessions", headers=_auth(tokens["access"]))).status_code == 200
            await adb(_change_password, alice, "a-new-password-2")
            refused = await client.get("/sessions", headers=_auth(tokens["access"]))
            stale = await client.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert refused.status_code == 401 and stale.status_code == 401


async def test_a_refresh_rotates_and_the_used_refresh_token_is_refused(api, alice):
    """Guards against a refresh token that can be replayed forever (no rotation, no blacklist)."""
    tokens = await _login(api)
    first = await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh"] != tokens["refresh"]
    assert (await api.get("/sessions", headers=_auth(rotated["access"]))).status_code == 200

    replay = await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert replay.status_code == 401 and replay.json()["detail"]
    assert (await api.post("/api/token/refresh/", json={"refresh": rotated["refresh"]})).status_code == 200
    assert await adb(BlacklistedToken.objects.filter(token__user=alice).count) == 2


async def test_logout_revokes_that_refresh_token_and_no_other_session(api, alice):
    """Guards against a logout that does nothing (the refresh token keeps minting) or that ends
    the user's other devices' sessions too."""
    laptop, phone = await _login(api), await _login(api)
    response = await api.post("/api/token/logout/", json={"refresh": phone["refresh"]})
    assert response.status_code == 200 and response.json() == {"revoked": "token"}

    assert (await api.post("/api/token/refresh/", json={"refresh": phone["refresh"]})).status_code == 401
    assert (await api.post("/api/token/logout/", json={"refresh": phone["refresh"]})).status_code == 401
    assert (await api.post("/api/token/refresh/", json={"refresh": laptop["refresh"]})).status_code == 200
    assert (await api.get("/sessions", headers=_auth(laptop["access"]))).status_code == 200
    assert await adb(lambda: list(BlacklistedToken.objects.values_list("token__user__username", flat=True))) \
        == ["alice", "alice"]  # the phone's token at logout, the laptop's at its rotation


async def test_logout_everywhere_ends_every_session_of_the_user_only(api, alice, bob):
    """Guards against "log out everywhere" leaving access tokens alive for their whole lifetime,
    or touching another user's sessions."""
    laptop, phone = await _login(api), await _login(api)
    bobs = await _login(api, {"username": "bob", "password": "bob-password-1"})
    response = await api.post("/api/token/logout/", json={"refresh": phone["refresh"], "everywhere": True})
    assert response.status_code == 200 and response.json() == {"revoked": "all"}

    for tokens in (laptop, phone):
        assert (await api.get("/sessions", headers=_auth(tokens["access"]))).status_code == 401
        assert (await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})).status_code == 401
    assert (await api.get("/sessions", headers=_auth(bobs["access"]))).status_code == 200
    assert (await api.post("/api/token/refresh/", json={"refresh": bobs["refresh"]})).status_code == 200


BAD_BODIES = [{}, {"refresh": ""}, {"refresh": "not-a-jwt"}, {"refresh": "x", "everywhere": "maybe"}, []]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_token_route_bodies_are_json_errors(api, alice, body):
    response = await api.post("/api/token/logout/", json=body)
    assert response.status_code in (400, 401) and response.json()["detail"]
    for url in ("/api/token/", "/api/token/refresh/"):
        response = await api.post(url, json={"username": ""} if url == "/api/token/" else body)
        assert response.status_code in (400, 401) and response.json()["detail"], (url, response.text)
    assert await adb(BlacklistedToken.objects.count) == 0


@contextmanager
def database_down():
    """Every SQL statement fails as on a lost connection, until the block ends."""

    def refuse(self, sql, params=None):
        raise OperationalError("simulated: connection to the database server lost")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CursorWrapper, "execute", refuse)
        yield


@pytest.mark.parametrize("route", ["/api/token/", "/api/token/refresh/", "/api/token/logout/"])
async def test_token_routes_answer_503_while_the_database_is_down(api, alice, route):
    """Guards against a 500 (an uncaught OperationalError in the DRF views) during an outage."""
    tokens = await _login(api)
    body = ALICE if route == "/api/token/" else {"refresh": tokens["refresh"]}
    with database_down():
        response = await api.post(route, json=body)
        refused = await api.get("/sessions", headers=_auth(tokens["access"]))
    assert response.status_code == 503, response.text
    assert "database" in response.json()["detail"].lower() and response.headers["Retry-After"] == "5"
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    # with the database back, the refresh token was neither used up nor revoked by the failed call
    assert (await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})).status_code == 200


async def test_an_outage_does_not_count_as_failed_logins(api, alice, settings, monkeypatch):
    """Guards against counting a database error as a wrong password (it would lock users out),
    whether the database fails before or during the password check."""
    settings.CIRKELLINE_LOGIN_FAILURES_PER_USERNAME = 3
    with database_down():
        for _ in range(2):
            assert (await api.post("/api/token/", json=ALICE)).status_code == 503

    def lost(*args, **kwargs):
        raise OperationalError("simulated: connection lost while checking the password")

    monkeypatch.setattr(ModelBackend, "authenticate", lost)
    for _ in range(3):
        assert (await api.post("/api/token/", json=ALICE)).status_code == 503
    monkeypatch.undo()
    assert (await api.post("/api/token/", json=ALICE)).status_code == 200


async def test_token_routes_answer_503_when_postgresql_refuses_connections(api, alice):
    if connections["default"].vendor != "postgresql":
        pytest.skip("connection refused is simulated on PostgreSQL; the SQLite run covers OperationalError above")
    from django.conf import settings as django_settings

    tokens = await _login(api)
    port = django_settings.DATABASES["default"]["PORT"]
    pool_timeout = django_settings.DATABASES["default"]["OPTIONS"]["pool"]["timeout"]
    await adb(break_database)
    try:
        responses = [await api.post("/api/token/", json=ALICE),
                     await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]}),
                     await api.post("/api/token/logout/", json={"refresh": tokens["refresh"]})]
    finally:
        await adb(repair_database, port, pool_timeout)
    for response in responses:
        assert response.status_code == 503 and response.headers["Retry-After"] == "5", response.text
    assert (await api.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})).status_code == 200
