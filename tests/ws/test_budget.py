"""Monthly budgets over the websocket: a used-up budget is a 402 error frame; nothing runs or is written."""

from __future__ import annotations

import pytest

from tests import budgets
from tests.budgets import budget, nothing_written_but, spent

from ..conftest import adb

pytestmark = pytest.mark.django_db(transaction=True)
admissions = budgets.admissions  # the fixture


async def test_the_websocket_gets_a_402_error_frame(connect, alice, admissions, recorder):
    await adb(budget, alice, "0.50")
    await adb(spent, alice, "0.75000000")
    socket = await connect(alice)
    await socket.send(type="run", message="hi", ref="r1")
    frame = await socket.until(lambda f: f.get("ref") == "r1")
    assert frame["type"] == "error" and frame["status"] == 402 and frame["code"] == "budget_exceeded"
    assert frame["detail"].startswith("Your monthly budget of $0.50 is used up: $0.75 spent since 01 ")
    assert admissions["admitted"] == admissions["released"] == [alice.pk] and recorder.calls == []
    await nothing_written_but(alice)
