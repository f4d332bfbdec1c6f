"""`GET/PATCH /profile`: the caller's own profile, created by the first change, every field checked."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from chat.personal.models import Profile
from tests.api.test_openapi import assert_conforms
from tests.conftest import adb, bearer, error_body

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULTS = {"display_name": "", "timezone": "UTC", "custom_instructions": "", "memories_enabled": False,
            "updated_at": None}


async def patch(api, user, body, **kwargs):
    return await api.patch("/profile", json=body, headers=bearer(user), **kwargs)


async def test_a_new_user_has_the_defaults_and_no_row_until_a_change(api, alice):
    response = await api.get("/profile", headers=bearer(alice))
    assert response.status_code == 200 and response.json() == DEFAULTS
    assert_conforms("/profile", "get", 200, response.json())
    assert not await adb(Profile.objects.exists)


async def test_alice_changes_only_the_fields_she_sends(api, alice):
    first = await patch(api, alice, {"display_name": "  Alice  ", "timezone": "Europe/Copenhagen"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert {k: body[k] for k in ("display_name", "timezone", "custom_instructions", "memories_enabled")} == {
        "display_name": "Alice", "timezone": "Europe/Copenhagen", "custom_instructions": "", "memories_enabled": False}
    assert body["updated_at"].endswith("Z")
    assert_conforms("/profile", "patch", 200, body)

    second = await patch(api, alice, {"custom_instructions": "Answer briefly.\nUse metric units.",
                                      "memories_enabled": True})
    assert second.json()["display_name"] == "Alice" and second.json()["timezone"] == "Europe/Copenhagen"
    row = await adb(Profile.objects.get, user=alice)
    assert (row.display_name, row.timezone, row.custom_instructions, row.memories_enabled) == (
        "Alice", "Europe/Copenhagen", "Answer briefly.\nUse metric units.", True)
    assert (await api.get("/profile", headers=bearer(alice))).json() == second.json()


async def test_bob_never_sees_or_changes_alices_profile(api, alice, bob):
    await patch(api, alice, {"display_name": "Alice", "custom_instructions": "Call me Captain."})
    assert (await api.get("/profile", headers=bearer(bob))).json() == DEFAULTS
    refused = await patch(api, bob, {"user_id": str(alice.pk), "display_name": "Mallory"})
    assert refused.status_code == 400 and "user_id" in error_body(refused)["detail"]
    await patch(api, bob, {"display_name": "Bob"})
    assert (await api.get("/profile", headers=bearer(alice))).json()["display_name"] == "Alice"
    assert await adb(lambda: sorted(Profile.objects.values_list("user__username", "display_name"))) == [
        ("alice", "Alice"), ("bob", "Bob")]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"timezone": "Mars/Olympus_Mons"}, 400, "IANA timezone"),
    ({"timezone": "../../etc/passwd"}, 400, "IANA timezone"),
    ({"timezone": 1}, 400, "IANA timezone"),
    ({"display_name": 7}, 400, "must be a string"),
    ({"display_name": "Al\x07ice"}, 400, "control characters"),
    ({"display_name": "x" * 101}, 413, "limit is 100"),
    ({"custom_instructions": "x" * (settings.CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX + 1)}, 413, "too long"),
    ({"custom_instructions": "nul\x00"}, 400, "NUL"),
    ({"memories_enabled": "yes"}, 400, "true or false"),
    ({"favourite_colour": "blue"}, 400, "Unknown field"),
    ([], 400, "object"),
])
async def test_a_bad_change_is_refused_and_changes_nothing(api, alice, body, status, words):
    response = await patch(api, alice, body)
    assert response.status_code == status, response.text
    assert words in error_body(response)["detail"]
    assert not await adb(Profile.objects.exists)


async def test_a_change_must_be_json(api, alice):
    response = await api.patch("/profile", data={"display_name": "Alice"}, headers=bearer(alice))
    assert response.status_code == 415
    assert not await adb(Profile.objects.exists)


async def test_custom_instructions_keep_new_lines_and_tabs_up_to_the_limit(api, alice):
    text = "Line one\n\tindented " + "x" * (settings.CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX - 30)
    response = await patch(api, alice, {"custom_instructions": text})
    assert response.status_code == 200 and response.json()["custom_instructions"] == text


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def test_the_chat_page_changes_the_profile_with_its_cookie_and_the_csrf_token(api, alice):
    assert (await api.get("/profile")).status_code == 401
    api.cookies.set(settings.SESSION_COOKIE_NAME, await adb(_session_cookie, alice))
    assert (await api.get("/profile")).status_code == 200
    refused = await api.patch("/profile", json={"display_name": "Alice"})
    assert refused.status_code == 403 and "CSRF" in error_body(refused)["detail"]
    assert not await adb(Profile.objects.exists)

    await api.get("/admin/login/")  # sets the csrftoken cookie
    allowed = await api.patch("/profile", json={"display_name": "Alice"},
                              headers={"X-CSRFToken": api.cookies["csrftoken"]})
    assert allowed.status_code == 200 and allowed.json()["display_name"] == "Alice"
