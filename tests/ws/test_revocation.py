"""Revoked access ends at once: the user's open sockets close and their live runs stop (billed),
in this process and, with Redis, in every other one.

Revocation is a password change, a deactivation, "log out everywhere" (a token version bump) or
a deleted account, done anywhere (here: the ORM, as the admin or a shell would).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from chat.identity.callers import TOKEN_VERSION_CLAIM
from chat.models import TokenVersion, access_revoked
from chat.ws import revocation
from chat.ws.frames import CLOSE_UNAUTHENTICATED
from metrics.models import RunUsage

from ..conftest import adb
from ..live import live_server
from .conftest import FRAME_WAIT, token_for

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = 5.0  # seconds per scripted provider call: a run is live for as long as a test needs


def _deactivate(user) -> None:
    user.is_active = False
    user.save()


def _change_password(user) -> None:
    user.set_password("a-new-password-2")
    user.save()


REVOKE = {
    "deactivated": _deactivate,
    "password changed": _change_password,
    "logged out everywhere": lambda user: TokenVersion.objects.bump(user.pk),
    "deleted": lambda user: user.delete(),
}


async def _usage_row(run_id: str) -> RunUsage:
    """The run's usage row, once its final write landed (waits on the condition, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FRAME_WAIT
    while loop.time() < deadline:
        row = await adb(RunUsage.objects.filter(run_id=run_id).ended().first)  # `running` until it ends
        if row is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"no usage row for run {run_id}")


async def _closed_as_revoked(socket) -> None:
    error = await socket.until_type("error")
    assert (error["status"], error["code"]) == (401, "revoked")
    closed = await socket.until_type("closed")
    assert closed["code"] == CLOSE_UNAUTHENTICATED


@pytest.mark.parametrize("how", list(REVOKE))
async def test_revoking_access_closes_the_users_sockets_and_cancels_their_runs(connect, alice, bob, use_latency,
                                                                               how):
    """Guards against an open socket outliving the access it was opened with (it kept working:
    `watch`, `cancel`), and against a deactivated user's run going on to its deadline."""
    use_latency(SLOW)
    by_token = await connect(alice, via="header")
    by_cookie = await connect(alice, via="cookie")
    bystander = await connect(bob, via="header")
    run_id, _ = await by_token.run("Please research the history of Copenhagen")
    loop = asyncio.get_running_loop()
    started = loop.time()

    await adb(REVOKE[how], alice)

    await _closed_as_revoked(by_token)
    if how == "logged out everywhere":  # ends every token; a login cookie is not a token, and stays
        assert await by_cookie.nothing_more()
    else:
        await _closed_as_revoked(by_cookie)
    row = await _usage_row(run_id)
    assert row.status == "cancelled"
    assert loop.time() - started < SLOW  # stopped, not left to its provider call, let alone its deadline
    assert row.model_calls == 1 and row.input_tokens > 0  # the call it cut off is billed
    assert await bystander.nothing_more()  # bob's socket is not touched


async def test_a_socket_whose_login_survives_stays_open(connect, alice):
    """A revocation message makes each socket check its own credentials: a token minted after the
    change (a fresh login) is still good, so that socket stays, and a stray message closes nothing."""
    await adb(TokenVersion.objects.bump, alice.pk)
    token = AccessToken.for_user(alice)
    token[TOKEN_VERSION_CLAIM] = 1  # a login after the bump
    fresh = await connect(None, via=None, subprotocols=["bearer", str(token)])
    assert (await fresh.next())["type"] == "ready"
    await adb(lambda: access_revoked.send(sender=TokenVersion, user_id=alice.pk))
    assert await fresh.nothing_more()
    await adb(TokenVersion.objects.bump, alice.pk)
    await _closed_as_revoked(fresh)


async def test_watch_and_cancel_check_the_credentials_even_if_the_close_was_missed(connect, alice):
    """Guards against frames on an open socket skipping the credential check (as `run` already had
    it): if the close never arrived (a channel-layer outage), the socket still does nothing."""
    socket = await connect(alice, via="header")
    access_revoked.disconnect(dispatch_uid="chat.ws.revocation")
    try:
        await adb(TokenVersion.objects.bump, alice.pk)
    finally:
        access_revoked.connect(revocation._on_access_revoked, dispatch_uid="chat.ws.revocation")
    await socket.send(type="watch", session_id="some-session", ref="w")
    assert (await socket.until_type("error", ref="w"))["status"] == 401
    await socket.send(type="cancel", run_id="some-run", ref="c")
    assert (await socket.until_type("error", ref="c"))["status"] == 401


@pytest.mark.live
async def test_revoking_access_in_one_process_closes_sockets_and_runs_in_another(alice):
    """Guards against revocation reaching only the process where it happened: the socket and the
    run live in a real server process; the deactivation happens here."""
    if not settings.REDIS_URL:
        pytest.skip("cross-process revocation needs REDIS_URL (the CI PostgreSQL + Redis job sets it)")
    with live_server({"CIRKELLINE_MODEL": "scripted", "CIRKELLINE_SCRIPTED_LATENCY": str(SLOW)}) as base:
        async with AsyncExitStack() as stack:
            ws = await stack.enter_async_context(ws_connect(base.replace("http", "ws") + "/ws/chat/",
                                                            subprotocols=["bearer", token_for(alice)]))
            assert '"ready"' in await asyncio.wait_for(ws.recv(), FRAME_WAIT)
            await ws.send('{"type": "run", "message": "Please research Copenhagen", "ref": "r"}')
            run_id = None
            while run_id is None:
                frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_WAIT))
                if frame["type"] == "run_started":
                    run_id = frame["run_id"]
            loop = asyncio.get_running_loop()
            started = loop.time()

            await adb(_deactivate, alice)

            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), FRAME_WAIT)
            assert closed.value.rcvd.code == CLOSE_UNAUTHENTICATED
            row = await _usage_row(run_id)
            assert row.status == "cancelled" and row.model_calls == 1
            assert loop.time() - started < SLOW
