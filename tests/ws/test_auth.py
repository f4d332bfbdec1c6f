"""Who may use the chat websocket: a login cookie or a JWT (header or first frame); nobody else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework_simplejwt import tokens as jwt_tokens

from chat.ws import credentials
from metrics.models import RunUsage

from ..conftest import adb
from .conftest import ORIGIN, token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_an_anonymous_socket_is_told_why_and_closed_with_4401(connect):
    """Guards against a socket without credentials being able to start runs (or being dropped silently)."""
    socket = await connect()
    await socket.send(type="run", message="hello")
    error = await socket.next()
    assert error["type"] == "error" and error["status"] == 401 and error["code"] == "unauthenticated"
    assert "auth" in error["detail"]
    assert await socket.next() == {"type": "closed", "code": 4401}
    assert await adb(RunUsage.objects.count) == 0


async def test_a_socket_that_never_authenticates_is_closed(connect, monkeypatch):
    """Guards against unauthenticated sockets being held open forever."""
    monkeypatch.setattr(credentials, "AUTH_TIMEOUT", 0.05)
    socket = await connect()
    assert (await socket.next())["status"] == 401
    assert await socket.next() == {"type": "closed", "code": 4401}


async def test_a_bad_token_in_the_header_is_refused(connect):
    """Guards against a tampered token being accepted (the signature is verified)."""
    socket = await connect(subprotocols=["bearer", "not.a.token"])
    assert socket.subprotocol == "bearer"
    error = await socket.next()
    assert error["status"] == 401 and "invalid or has expired" in error["detail"]
    assert await socket.next() == {"type": "closed", "code": 4401}


async def test_a_token_in_the_query_string_is_ignored(connect, alice):
    """Guards against accepting tokens from the URL, where they end up in access logs."""
    socket = await connect(path=f"/ws/chat/?token={token_for(alice)}")
    await socket.send(type="run", message="hello")
    assert (await socket.next())["status"] == 401
    assert await socket.next() == {"type": "closed", "code": 4401}


@pytest.mark.parametrize("via", ["cookie", "header", "frame"])
async def test_a_login_cookie_or_a_jwt_is_accepted(connect, alice, via):
    """Guards against any of the three ways in (pages' cookie, API clients' JWT header or frame) breaking."""
    socket = await connect(alice, via=via)  # asserts the `ready` frame names alice
    assert socket.subprotocol == ("bearer" if via == "header" else None)
    run_id, _ = await socket.run("What is 2+2?")
    finished = await socket.finish(run_id)
    assert finished["status"] == "completed"
    row = await adb(RunUsage.objects.get, run_id=run_id)
    assert row.user_id == alice.pk and row.status == "completed"


async def test_a_page_of_another_site_cannot_open_a_socket(connect, alice):
    """Guards against cross-site websocket hijacking: a foreign page riding alice's cookie."""
    with pytest.raises(AssertionError, match="handshake refused"):
        await connect(alice, headers=[(b"origin", b"http://evil.example")])


HOST = (b"host", b"127.0.0.1")


@pytest.mark.parametrize("origin", [b"http://127.0.0.1:1", b"http://localhost:3000", b"https://127.0.0.1",
                                    b"http://127.0.0.1.evil.example", b"null", b"http://127.0.0.1:notaport"])
async def test_a_cookie_socket_from_another_scheme_host_or_port_is_refused(connect, alice, origin):
    """Guards against an Origin check that compares host names only: a page on another port of
    the same host (http://127.0.0.1:1, a dev server on localhost:3000) or on https where the site
    is http is another origin, and must not ride alice's cookie."""
    with pytest.raises(AssertionError, match="handshake refused"):
        await connect(alice, headers=[(b"origin", origin), HOST])


async def test_the_sites_own_origin_and_its_trusted_origins_are_accepted(connect, alice, settings):
    """The page's own origin (scheme, host and port of the handshake's Host) and CSRF_TRUSTED_ORIGINS
    (the site's public origins behind a proxy) open cookie sockets; a default port may be written or not."""
    await connect(alice, headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")])
    await connect(alice, headers=[(b"origin", b"http://127.0.0.1:80"), HOST])
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    await connect(alice, headers=[(b"origin", b"https://chat.example.com"), HOST])
    await connect(alice, headers=[(b"origin", b"https://eu.example.org"), HOST])
    for foreign in (b"http://chat.example.com", b"https://chat.example.com:8443", b"https://example.org.evil"):
        with pytest.raises(AssertionError, match="handshake refused"):
            await connect(alice, headers=[(b"origin", foreign), HOST])
    with pytest.raises(AssertionError, match="handshake refused"):  # a Host the site does not serve
        await connect(alice, headers=[(b"origin", b"http://evil.example"), (b"host", b"evil.example")])


async def test_a_cors_origin_may_open_a_token_socket_but_never_rides_the_cookie(connect, alice, settings):
    """CIRKELLINE_CORS_ORIGINS (agent-ui's) are for token clients: their sockets authenticate with
    a JWT, and a login cookie the browser attaches is not read."""
    settings.CORS_ALLOWED_ORIGINS = ["http://localhost:3000"]
    cors = (b"origin", b"http://localhost:3000")
    await connect(alice, via="header", headers=[cors, HOST])
    await connect(alice, via="frame", headers=[cors, HOST])
    from .conftest import session_cookie

    socket = await connect(headers=[cors, HOST, await adb(session_cookie, alice)])
    await socket.send(type="run", message="hello")
    assert (await socket.next())["status"] == 401
    assert await socket.next() == {"type": "closed", "code": 4401}
    assert await adb(RunUsage.objects.count) == 0


async def test_a_client_without_an_origin_header_may_connect_with_a_token(connect, alice):
    """Guards against refusing non-browser API clients, which send no Origin header."""
    await connect(alice, via="header", headers=[])


async def test_an_expired_token_refuses_new_runs_until_a_fresh_one_is_sent(connect, alice, bob, monkeypatch):
    """Guards against a socket outliving its token: every run re-checks it, and a token of
    another user cannot take the socket over."""
    socket = await connect(alice, via="header")
    later = jwt_tokens.aware_utcnow() + timedelta(hours=2)
    monkeypatch.setattr(jwt_tokens, "aware_utcnow", lambda: later)
    await socket.send(type="run", message="hello", ref="r1")
    error = await socket.next()
    assert error == {"type": "error", "status": 401, "code": "unauthenticated", "ref": "r1",
                     "detail": "The access token is invalid or has expired."}
    monkeypatch.undo()  # back to now (PyJWT refuses tokens issued in the future), with fresh tokens
    await socket.send(type="auth", token=token_for(bob))
    assert (await socket.next())["status"] == 403
    await socket.send(type="auth", token=token_for(alice))
    assert (await socket.next())["type"] == "ready"
    run_id, _ = await socket.run("What is 2+2?")
    assert (await socket.finish(run_id))["status"] == "completed"
    assert await adb(RunUsage.objects.filter(user=alice).count) == 1


async def test_a_socket_whose_login_ended_refuses_new_runs(connect, alice):
    """Guards against a cookie socket still running messages after its user logged out."""
    socket = await connect(alice, via="cookie")
    from django.contrib.sessions.models import Session

    await adb(lambda: Session.objects.all().delete())  # what logout does to the session row
    await socket.send(type="run", message="hello", ref="r1")
    error = await socket.next()
    assert error["status"] == 401 and error["ref"] == "r1" and "log in again" in error["detail"]
    assert await adb(RunUsage.objects.count) == 0


async def test_frames_before_authentication_other_than_auth_close_the_socket(connect):
    """Guards against a `watch` (group join) by an anonymous socket."""
    socket = await connect(headers=[ORIGIN])
    await socket.send(type="watch", session_id="abc")
    assert (await socket.next())["status"] == 401
    assert (await socket.next())["type"] == "closed"
