"""One failed-login throttle for every way in: the admin's login form, the chat's, the token route,
and anything else that calls Django's authenticate()."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory

pytestmark = pytest.mark.django_db

STAFF = {"username": "staff", "password": "staff-password-1"}


@pytest.fixture(autouse=True)
def small_limits(settings):
    """Low limits, and counters of this test's own (a fresh key prefix: nothing carries over)."""
    settings.CIRKELLINE_REDIS_PREFIX = f"{settings.CIRKELLINE_REDIS_PREFIX}-{uuid.uuid4().hex[:8]}"
    settings.CIRKELLINE_LOGIN_FAILURES_PER_USERNAME = 3
    settings.CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS = 50
    settings.CIRKELLINE_LOGIN_FAILURE_WINDOW = 900


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(**STAFF, is_staff=True, is_superuser=True)


def admin_login(client: Client, password: str):
    return client.post("/admin/login/?next=/admin/", {**STAFF, "password": password, "next": "/admin/"})


def test_the_admin_login_is_throttled_even_with_the_right_password(staff):
    """Guards against /admin/login/ as an unthrottled way to guess a staff password (30 wrong
    passwords, then the right one, logged in)."""
    client = Client()
    for _ in range(3):
        wrong = admin_login(client, "not-the-password")
        assert wrong.status_code == 200 and b"correct username and password" in wrong.content
    refused = admin_login(client, STAFF["password"])
    assert refused.status_code == 200 and b"Too many failed logins for this username" in refused.content
    assert client.get("/admin/").status_code == 302, "not logged in"


def test_failures_on_any_form_count_toward_one_limit(staff):
    """Guards against each login form keeping its own count (the admin's failures never counted
    toward the API's limit): one failure on the admin, one on the chat page, one on the token
    route, and all three refuse the right password."""
    client = Client()
    admin_login(client, "wrong-1")
    client.post("/login/", {**STAFF, "password": "wrong-2"})
    assert client.post("/api/token/", {**STAFF, "password": "wrong-3"},
                       content_type="application/json").status_code == 401
    assert client.post("/api/token/", STAFF, content_type="application/json").status_code == 429
    assert b"Too many failed logins" in client.post("/login/", STAFF).content
    assert b"Too many failed logins" in admin_login(client, STAFF["password"]).content


def test_authenticate_itself_refuses_a_throttled_username(staff):
    """Guards against a login path that forgets the throttle: Django's authenticate() (what every
    form and the token route call) counts failures and refuses the right password once the
    username is throttled, whoever calls it."""
    request = RequestFactory().post("/somewhere/", REMOTE_ADDR="10.0.0.9")
    for _ in range(3):
        assert authenticate(request, username="staff", password="wrong") is None
    assert authenticate(request, username="staff", password=STAFF["password"]) is None
    assert authenticate(request, username="other", password="x") is None  # no such user: counted, not refused


def test_a_successful_login_clears_the_usernames_count(staff):
    request = RequestFactory().post("/somewhere/", REMOTE_ADDR="10.0.0.9")
    for _ in range(2):
        assert authenticate(request, username="staff", password="wrong") is None
    assert authenticate(request, username="staff", password=STAFF["password"]) == staff
    for _ in range(2):
        assert authenticate(request, username="staff", password="wrong") is None
    assert authenticate(request, username="staff", password=STAFF["password"]) == staff
