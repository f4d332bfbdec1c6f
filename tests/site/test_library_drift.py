"""The library internals cirkelline_site's corrections depend on are the ones they were written against.

- cirkelline_site/staticfiles.py: WhiteNoise's middleware as async middleware (replaces its
  `__call__`, overrides `add_files`, reads its index and calls `StaticFile.get_response`).
- cirkelline_site/asgi.py `_correct_daphne`: Daphne's `WebRequest` replaced by a subclass passing
  Twisted's `parsePOSTFormSubmission=False` (Daphne's factory hands each connection the
  module-level name), and the reason phrase for 429 added to Twisted's `RESPONSES`.

Each is pinned by the library's version and a hash of the upstream source; a failure names the
correction to re-check (and, for Twisted's table, whether the correction is still needed).
"""

from __future__ import annotations

import hashlib
import inspect

import pytest

from tests.drift import check_source, check_version

PINNED = {"whitenoise": "6.12.0", "daphne": "4.2.3", "Twisted": "26.10.0"}
STATIC = "cirkelline_site.staticfiles.StaticFilesMiddleware"
DAPHNE = "cirkelline_site.asgi._correct_daphne"

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
    "twisted.web._responses": (
        "ce200bb2dfd54f84", f"{DAPHNE} (adds the 429 reason phrase; drop that if Twisted now has one)",
        "Twisted"),
}


@pytest.mark.parametrize("distribution", list(PINNED))
def test_whitenoise_daphne_and_twisted_are_the_pinned_versions(distribution):
    """Guards against an upgrade going in without the corrections above being re-checked."""
    check_version(distribution, PINNED[distribution], "cirkelline_site/staticfiles.py and asgi.py's corrections")


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
