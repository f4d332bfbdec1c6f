"""The inline middleware keep Django's behaviour: sessions are saved, CSRF is enforced, headers set."""

import re

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


async def test_admin_login_over_asgi_saves_the_session_and_checks_csrf(api, django_user_model):
    from tests.conftest import adb

    await adb(django_user_model.objects.create_superuser, "staff", password="staff-password-1")
    page = await api.get("/admin/login/?next=/admin/")
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    refused = await api.post("/admin/login/?next=/admin/", data={"username": "staff", "password": "staff-password-1"})
    assert refused.status_code == 403

    login = await api.post("/admin/login/?next=/admin/",
                           data={"username": "staff", "password": "staff-password-1", "csrfmiddlewaretoken": token})
    assert login.status_code == 302 and login.headers["location"] == "/admin/"
    assert "sessionid" in api.cookies  # the session was saved (in a thread) and its cookie set
    index = await api.get("/admin/")
    assert index.status_code == 200 and "Site administration" in index.text


async def test_an_api_response_carries_the_security_headers(api):
    response = await api.get("/health")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
