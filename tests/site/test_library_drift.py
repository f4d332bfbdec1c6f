"""The library internals cirkelline_site's corrections depend on are the ones they were written against.

- cirkelline_site/staticfiles.py: WhiteNoise's middleware as async middleware (replaces its
  `__call__`, overrides `add_files`, reads its index and calls `StaticFile.get_response`).
- cirkelline_site/asgi.py `_correct_daphne`: Daphne's `WebRequest` replaced by a subclass passing
  Twisted's `parsePOSTFormSubmission=False` (Daphne's factory hands each connection the
  module-level name), the reason phrase for 429 added to Twisted's `RESPONSES`, and Daphne's
  `serverClose` sending a server's close codes (1012) through Autobahn's `sendCloseFrame`.
- cirkelline_site/shutdown.py: Twisted's SIGTERM/SIGINT handlers (installed while the reactor
  starts, before `callWhenRunning` callbacks run) replaced by the drain's, which calls
  `reactor.stop()` when done; Daphne's "before shutdown" trigger cancelling every application.

Each is pinned by the library's version and a hash of the upstream source; a failure names the
correction to re-check (and, for Twisted's table, whether the correction is still needed).
"""

from __future__ import annotations

import hashlib
import inspect

import pytest

from tests.drift import check_source, check_version

PINNED = {"whitenoise": "6.12.0", "daphne": "4.2.3", "Twisted": "26.10.0", "autobahn": "26.11.1"}
STATIC = "cirkelline_site.staticfiles.StaticFilesMiddleware"
DAPHNE = "cirkelline_site.asgi._correct_daphne"
SHUTDOWN = "cirkelline_site.shutdown"

# upstream function (or module) -> (sha256 of its source, first 16 hex digits; what depends on it; distribution)
UPSTREAM = {
    "whitenoise.middleware:WhiteNoiseMiddleware.__init__": (
        "3a5a52074a3bbd1c", f"{STATIC} (its __init__ builds the index `files` that __call__ reads)", "whitenoise"),
    "whitenoise.middleware:WhiteNoiseMiddleware.__call__": (
        "538b06958308b801", f"{STATIC}.__call__ (replaces it, async)", "whitenoise"),
    "whitenoise.base:WhiteNoise.add_files": ("dfbe7beb6dac6c00", f"{STATIC}.add_files (overrides it)",
                                             "whitenoise"),
    "whitenoise.responders:StaticFile.get_response": (
        "eae5fa4bd64d991d", f"{STATIC}.__call__ (calls it in a thread, streams its file)", "whitenoise"),
    "daphne.http_protocol:HTTPFactory.buildProtocol": (
        "35e878a6e0e41af2", f"{DAPHNE} (relies on it using the module-level WebRequest)", "daphne"),
    "twisted.web.http:Request.__init__": (
        "2d3f7dbd28d0ce02", f"{DAPHNE} (passes parsePOSTFormSubmission=False)", "Twisted"),
    "autobahn.websocket.protocol:WebSocketProtocol.sendClose": (
        "6ccfd325e6272309", f"{DAPHNE} (it refuses 1012; drop the wrapper if it allows it now)", "autobahn"),
    "autobahn.websocket.protocol:WebSocketProtocol.sendCloseFrame": (
        "a511406d6b0d711e", f"{DAPHNE} (calls it with the close code)", "autobahn"),
    "twisted.internet._signals:_WithSignalHandling.install": (
        "776311156d1e9443", f"{SHUTDOWN} (replaces the handlers it installs, recognised as reactor.sigTerm/sigInt)",
        "Twisted"),
    "twisted.internet.base:ReactorBase.sigTerm": (
        "acdd1048ed5087e7", f"{SHUTDOWN} (does what it did, reactor.stop(), after the drain)", "Twisted"),
    "twisted.internet.base:ReactorBase._reallyStartRunning": (
        "ecc548ac4851d347", f"{SHUTDOWN} (the handlers are installed here, before callWhenRunning's callbacks)",
        "Twisted"),
    "daphne.server:Server.run": (
        "447c6bd42c62e98c", f"{SHUTDOWN} (signal handlers on; kill_all_applications a before-shutdown trigger)",
        "daphne"),
    "daphne.server:Server.kill_all_applications": (
        "4e1618c6f7871758", f"{SHUTDOWN} (it cancels every request at once: why the stop waits for the drain)",
        "daphne"),
    "twisted.web._responses": (
        "ce200bb2dfd54f84", f"{DAPHNE} (adds the 429 reason phrase; drop that if Twisted now has one)",
        "Twisted"),
}


@pytest.mark.parametrize("distribution", list(PINNED))
def test_whitenoise_daphne_and_twisted_are_the_pinned_versions(distribution):
    """Guards against an upgrade going in without the corrections above being re-checked."""
    check_version(distribution, PINNED[distribution],
                  "cirkelline_site/staticfiles.py, asgi.py's corrections and shutdown.py")


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_library_code_a_correction_relies_on_is_unchanged(name):
    """Guards against a WhiteNoise, Daphne or Twisted change silently breaking a correction."""
    expected, override, distribution = UPSTREAM[name]
    check_source(name, expected, override, distribution)


def test_daphnes_own_web_request_is_unchanged():
    """Guards against a Daphne change to the WebRequest that asgi.py subclasses and puts in its place
    (pinned through the subclass's base: the module-level name is the subclass once asgi.py ran)."""
    from daphne import http_protocol

    import cirkelline_site.asgi  # noqa: F401 - the correction is in place

    replaced = http_protocol.WebRequest
    assert getattr(replaced, "cirkelline_no_form_parsing", False), "asgi.py's WebRequest is not in place"
    original = replaced.__mro__[1]
    digest = hashlib.sha256(inspect.getsource(original.__init__).encode()).hexdigest()[:16]
    assert digest == "ec85d9f2a762a39f", (
        f"daphne.http_protocol.WebRequest.__init__ changed: re-check {DAPHNE} against the new source, then "
        "update its hash here.")


def test_daphnes_own_server_close_is_unchanged():
    """Guards against a Daphne change to the serverClose that asgi.py wraps (so that 1012 reaches
    clients): pinned through the wrapper's `__wrapped__` once asgi.py ran."""
    from daphne import ws_protocol

    import cirkelline_site.asgi  # noqa: F401 - the correction is in place

    wrapper = ws_protocol.WebSocketProtocol.serverClose
    assert getattr(ws_protocol.WebSocketProtocol, "cirkelline_server_codes", False), "asgi.py's wrapper is not in place"
    digest = hashlib.sha256(inspect.getsource(wrapper.__wrapped__).encode()).hexdigest()[:16]
    assert digest == "8302150efac698d6", (
        f"daphne.ws_protocol.WebSocketProtocol.serverClose changed: re-check {DAPHNE} against the new source, then "
        "update its hash here.")
