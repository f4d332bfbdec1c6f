"""Static files: the admin's CSS and JS are served (WhiteNoise), nothing else on disk is.

Every static response carries the same security headers as the API's, and any path outside the
indexed static files is an ordinary JSON 404, however it is encoded.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from tests.conftest import error_body
from tests.live import live_server

ADMIN_CSS = "/static/admin/css/base.css"
# As a client sends them; the server decodes %2e to "." and %2f to "/" before routing.
TRAVERSALS = [
    "/static/%2e%2e/%2e%2e/cirkelline_site/settings.py",
    "/static/..%2f..%2fcirkelline_site/settings.py",
    "/static/%2e%2e/cirkelline_site/settings.py",
    "/static/admin/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/cirkelline_site/settings.py",
    "/static/admin/css/..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd",
    "/static/%2fetc/passwd",
    "/static/%2e%2e%5c%2e%2e%5ccirkelline_site%5csettings.py",
    "/static/admin/css/base.css%2f..%2f..%2f..%2f..%2fmanage.py",
    "/static/%252e%252e/%252e%252e/cirkelline_site/settings.py",
]
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin", "x-frame-options": "DENY"}


def _no_file_content(body: bytes) -> bool:
    return not any(marker in body for marker in (b"SECRET_KEY", b"import ", b"root:", b"DJANGO_SETTINGS_MODULE"))


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_paths_outside_the_static_files_are_a_json_404(api, path):
    """Guards against the static handler joining a decoded `..` path onto a static folder: today a
    500 with a traceback logged per request (or a hang), and a file outside the folders if the
    join were not checked."""
    response = await api.get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert error_body(response) == {"detail": "Not found."}
    assert _no_file_content(response.content)


async def test_an_admin_css_file_is_served_with_the_security_headers(api):
    """Guards against static responses without the headers every other response has (a sniffable,
    frameable file) and against the admin losing its CSS."""
    response = await api.get(ADMIN_CSS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert b"DJANGO Admin styles" in response.content
    assert int(response.headers["content-length"]) == len(response.content)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "strict-transport-security" not in response.headers  # plain http: HSTS is never sent

    head = await api.head(ADMIN_CSS)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == response.headers["content-length"]
    again = await api.get(ADMIN_CSS, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.headers.get("x-content-type-options") == "nosniff"
    post = await api.post(ADMIN_CSS)
    assert post.status_code == 405


async def test_a_missing_static_file_is_a_json_404(api):
    response = await api.get("/static/admin/css/no-such-file.css")
    assert response.status_code == 404 and error_body(response) == {"detail": "Not found."}


def _get(base_url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (no client-side normalisation of `..` or escapes)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_daphne_serves_static_files_and_refuses_traversal():
    """Guards against the same bugs through the real server: Daphne decodes the path itself, and
    there the traversal was a 500 HTML page from Daphne with a traceback logged."""
    with live_server({"CIRKELLINE_SERVE_STATIC": "true"}) as base_url:
        for path in [*TRAVERSALS, "/static/../../cirkelline_site/settings.py"]:
            status, headers, body = _get(base_url, path)
            assert (status, headers["content-type"]) == (404, "application/json"), (path, status, body[:200])
            assert _no_file_content(body)
        status, headers, body = _get(base_url, ADMIN_CSS)
        assert status == 200 and b"DJANGO Admin styles" in body
        assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_with_serve_static_off_a_proxy_serves_them_and_the_app_says_404():
    with live_server({"CIRKELLINE_SERVE_STATIC": "false"}) as base_url:
        status, headers, body = _get(base_url, ADMIN_CSS)
    assert (status, headers["content-type"]) == (404, "application/json") and b"DJANGO" not in body
