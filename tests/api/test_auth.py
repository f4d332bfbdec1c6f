"""Authentication: JWTs are verified, cookies need CSRF for writes, nothing else gets in."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from metrics.models import RunUsage
from tests.conftest import adb, bearer

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/teams/cirkelline/runs"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user) -> dict:
    return dict(AccessToken.for_user(user).payload)


def forged_tokens(user) -> dict[str, str]:
    claims = _claims(user)
    good = str(AccessToken.for_user(user))
    header, payload, signature = good.split(".")
    other_claims = dict(claims, user_id=str(user.pk + 1000))
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong key": jwt.encode(claims, "not-the-server-key-but-long-enough-for-hs256", algorithm="HS256"),
        "tampered payload": f"{header}.{_b64(other_claims)}.{signature}",
        "truncated": good[:-5],
        "garbage": "not-a-jwt",
        "refresh token": str(RefreshToken.for_user(user)),
        "expired": jwt.encode(dict(claims, exp=1), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256"),
    }


async def test_requests_without_credentials_are_401(api):
    for method, url in [("get", "/teams"), ("post", RUNS), ("get", "/sessions"), ("get", "/sessions/abc")]:
        response = await getattr(api, method)(url)
        assert response.status_code == 401, url
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bad_tokens_are_401_and_write_nothing(api, alice):
    for name, token in (await adb(forged_tokens, alice)).items():  # a refresh token is recorded: ORM
        response = await api.post(RUNS, data={"message": "hi", "stream": "false"},
                                  headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert "detail" in response.json()
    for header in ("Token abc", "Bearer", "Basic YWxpY2U6cGFzcw=="):
        assert (await api.get("/sessions", headers={"Authorization": header})).status_code == 401
    assert await adb(RunUsage.objects.count) == 0


async def test_an_inactive_user_is_refused(api, alice):
    """Guards against trusting a user looked up earlier (a per-process user cache kept a
    deactivated user's token working for ~30 s): the token was just accepted, then is not."""
    headers = bearer(alice)
    assert (await api.get("/sessions", headers=headers)).status_code == 200
    alice.is_active = False
    await adb(alice.save)
    refused = await api.get("/sessions", headers=headers)
    assert refused.status_code == 401 and refused.json()["detail"]


async def test_tokens_expire(api, alice, settings):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=-timedelta(seconds=1))
    response = await api.get("/sessions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def test_a_logged_in_browser_needs_the_csrf_token_to_post(api, alice):
    api.cookies.set(settings.SESSION_COOKIE_NAME, await adb(_session_cookie, alice))
    assert (await api.get("/sessions")).status_code == 200
    refused = await api.post(RUNS, data={"message": "hi", "stream": "false"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert await adb(RunUsage.objects.count) == 0

    await api.get("/admin/login/")  # sets the csrftoken cookie
    csrf = api.cookies["csrftoken"]
    allowed = await api.post(RUNS, data={"message": "hi", "stream": "false"}, headers={"X-CSRFToken": csrf})
    assert allowed.status_code == 200, allowed.text
    assert await adb(RunUsage.objects.filter(user=alice).count) == 1
