"""This process's open chat sockets, closed with 1012 ("service restart") once it has drained.

A process that drains (SIGTERM: chat.runs.drain) refuses new runs, lets its runs finish, then
closes every socket with 1012: the page reconnects, to another process, and resumes. The set of
sockets is process-wide state, kept here rather than on the consumer class, and a socket that
connects after the drain is closed at once (`drained()`).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING

from chat.runs import drain

if TYPE_CHECKING:
    from .consumer import ChatConsumer

logger = logging.getLogger(__name__)

# Seconds a drained process waits for its sockets' clients to answer their 1012 close.
CLOSE_WAIT = 3.0

_sockets: weakref.WeakSet[ChatConsumer] = weakref.WeakSet()
_drained = False


def drained() -> bool:
    """Whether this process has drained (a new socket is told to go elsewhere at once)."""
    return _drained


def track(socket: ChatConsumer) -> None:
    """Close `socket` with 1012 when the process has drained."""
    _sockets.add(socket)


async def _close_sockets() -> None:
    """The process has drained: every socket is closed with 1012 (the page reconnects elsewhere)."""
    global _drained
    _drained = True
    sockets = [socket for socket in _sockets if not socket.closed]
    if sockets:
        logger.warning("drained: closing %d websocket(s) with 1012", len(sockets))
    await asyncio.gather(*(socket.restart_close() for socket in sockets), return_exceptions=True)
    # The close frames go out from Daphne's side, and the process stops right after this: wait
    # (briefly) for the clients' answers, so every page gets its 1012 rather than a dropped line.
    gone = [socket.gone for socket in sockets if not socket.gone.done()]
    if gone:
        await asyncio.wait(gone, timeout=CLOSE_WAIT)


drain.when_drained(_close_sockets)
