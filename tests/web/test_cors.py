"""CORS for browser API clients on other origins (agno's agent-ui): only the configured ones."""

from __future__ import annotations

import pytest

from tests.conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)

AGENT_UI = "http://localhost:3000"
# The routes agent-ui calls (GET /agents is answered 404 here: Cirkelline serves one team).
ROUTES = [("GET", "/health"), ("GET", "/config"), ("GET", "/teams"), ("GET", "/agents"), ("GET", "/sessions"),
          ("GET", "/sessions/abc/runs"), ("DELETE", "/sessions/abc"), ("POST", "/teams/cirkelline/runs")]


def preflight(origin: str, method: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"}


@pytest.fixture
def agent_ui_allowed(settings):
    settings.CORS_ALLOWED_ORIGINS = [AGENT_UI]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_preflight_from_a_configured_origin_allows_the_bearer_header(api, agent_ui_allowed, method, path):
    """Guards against agent-ui failing every request at its preflight (OPTIONS was a 405)."""
    response = await api.options(path, headers=preflight(AGENT_UI, method))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == AGENT_UI
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert method in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers  # tokens, never cookies


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_preflight_from_another_origin_gets_no_cors_headers(api, agent_ui_allowed, method, path):
    """Guards against answering CORS for any origin (a page elsewhere using a stolen token from a
    user's browser storage is still kept out)."""
    response = await api.options(path, headers=preflight("http://evil.example", method))
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_with_nothing_configured_no_origin_gets_cors_headers(api, settings):
    """Guards against CORS being open by default (CIRKELLINE_CORS_ORIGINS is empty)."""
    assert settings.CORS_ALLOWED_ORIGINS == []
    response = await api.options("/health", headers=preflight(AGENT_UI, "GET"))
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_the_actual_request_carries_the_allow_origin_header(api, agent_ui_allowed, alice):
    """Guards against a preflight that passes and a response the browser then hides from agent-ui."""
    response = await api.get("/teams", headers={"Origin": AGENT_UI, **bearer(alice)})
    assert response.status_code == 200 and response.json()[0]["id"] == "cirkelline"
    assert response.headers["access-control-allow-origin"] == AGENT_UI


async def test_pages_and_the_admin_get_no_cors_headers(api, agent_ui_allowed):
    """Guards against CORS reaching the cookie-authenticated pages."""
    for path in ("/login/", "/admin/login/", "/uploads"):
        response = await api.options(path, headers=preflight(AGENT_UI, "POST"))
        assert "access-control-allow-origin" not in response.headers, path


async def test_a_page_of_runs_shows_its_cursor_to_another_origin(api, agent_ui_allowed, alice):
    """Guards against a cross-origin client that gets a page of runs but cannot read where the
    next one starts (a browser hides response headers CORS does not expose)."""
    from tests.api.test_session_runs_paging import make_session
    from tests.conftest import adb

    await adb(make_session, alice, "long", 3)
    response = await api.get("/sessions/long/runs?limit=1", headers={"Origin": AGENT_UI, **bearer(alice)})
    assert response.headers["x-next-before"] == "long-t3"
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"x-next-before", "link"} <= exposed
