"""The Django internals chat/api/django_overrides.py depends on are the ones it was written against
(and the asgiref and Django code chat/api/request_threads.py relies on).

The inline middleware replace `MiddlewareMixin.__acall__` and run each middleware's hooks on the
event loop, which is right only while those hooks neither block nor touch the database (a
modified session's save is the one exception, and still goes to a thread); `CsrfCheck` overrides
`CsrfViewMiddleware._reject`. Each upstream function is pinned by a hash of its source: when
Django (or django-csp) changes one, the test names the override to re-check.
"""

from __future__ import annotations

import pytest

from tests.drift import check_source, check_version

PINNED = {"Django": "5.2.19", "django-csp": "4.0", "asgiref": "3.13.0"}
THREADS = "request_threads.RequestThreads"
INLINE = "django_overrides._Inline (runs this hook inline on the event loop: it must not block)"

# upstream function -> (sha256 of its source, first 16 hex digits; what depends on it; distribution)
UPSTREAM = {
    "django.utils.deprecation:MiddlewareMixin.__call__": (
        "337be048dd62e014", "django_overrides._Inline (Django calls __acall__ from here under ASGI)", "Django"),
    "django.utils.deprecation:MiddlewareMixin.__acall__": (
        "adf8cbcaf9f11e45", "django_overrides._Inline.__acall__ (replaces it: the same hooks, without "
                            "sync_to_async)", "Django"),
    "django.middleware.csrf:CsrfViewMiddleware._reject": (
        "7eb1866a0a25e964", "django_overrides.CsrfCheck._reject (overrides it to return the reason)", "Django"),
    "django.middleware.csrf:CsrfViewMiddleware.process_view": (
        "cdbdabe04318fc2f", "django_overrides.CsrfCheck (the API's check returns what _reject returns) and "
                            "django_overrides.CsrfViewMiddleware.process_view", "Django"),
    "django.middleware.csrf:CsrfViewMiddleware.process_request": ("9aec8dfd81c88a56", INLINE, "Django"),
    "django.middleware.csrf:CsrfViewMiddleware.process_response": ("9fe1054c0f64b37f", INLINE, "Django"),
    "django.contrib.sessions.middleware:SessionMiddleware.process_request": ("6782d24847e4a926", INLINE, "Django"),
    "django.contrib.sessions.middleware:SessionMiddleware.process_response": (
        "fbaf5503c20d7dd0", "django_overrides.SessionMiddleware.aprocess_response (sends to a thread exactly "
                            "when this saves the session)", "Django"),
    "django.middleware.security:SecurityMiddleware.process_request": ("3373d262748cbe3e", INLINE, "Django"),
    "django.middleware.security:SecurityMiddleware.process_response": ("3822bd0d5f79f4a3", INLINE, "Django"),
    "django.middleware.common:CommonMiddleware.process_request": ("993f4d1f2084e01e", INLINE, "Django"),
    "django.middleware.common:CommonMiddleware.process_response": ("eb5ad294e9fbda9b", INLINE, "Django"),
    "django.contrib.auth.middleware:AuthenticationMiddleware.process_request": (
        "6dd39b90ad6373e2", f"{INLINE}; the user must stay lazy", "Django"),
    "django.contrib.messages.middleware:MessageMiddleware.process_request": ("7f4834ba26ee0583", INLINE, "Django"),
    "django.contrib.messages.middleware:MessageMiddleware.process_response": ("04469c9493c90e26", INLINE, "Django"),
    "django.middleware.clickjacking:XFrameOptionsMiddleware.process_response": ("045e5788270860c6", INLINE,
                                                                                "Django"),
    "django.core.handlers.asgi:ASGIHandler.__call__": (
        "f756809e9c9308dc", f"{THREADS} (Django's own context, opened inside the request's, must add "
                            "nothing: only the outermost one counts)", "Django"),
    "asgiref.sync:SyncToAsync.__call__": (
        "6376e33c6d3d94c5", f"{THREADS} (a thread-sensitive call runs on the executor mapped to its "
                            "context in context_to_thread_executor)", "asgiref"),
    "asgiref.sync:ThreadSensitiveContext.__aenter__": (
        "b0355bf6b275a7c2", f"{THREADS} (the outermost context is the one calls see)", "asgiref"),
    "asgiref.sync:ThreadSensitiveContext.__aexit__": (
        "5571fec562fa6e84", f"{THREADS} (shuts down what the map holds for it: the lent executor is taken "
                            "out first)", "asgiref"),
    "csp.middleware:CSPMiddleware.process_request": ("bf5a743128a430b8", INLINE, "django-csp"),
    "csp.middleware:CSPMiddleware.process_response": ("fa72a0cd0d633c49", INLINE, "django-csp"),
}


@pytest.mark.parametrize("distribution", list(PINNED))
def test_django_and_django_csp_are_the_pinned_versions(distribution):
    """Guards against a Django (or django-csp, asgiref) upgrade going in without the overrides being re-checked."""
    check_version(distribution, PINNED[distribution],
                  "the overrides in chat/api/django_overrides.py and chat/api/request_threads.py")


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_django_code_an_override_relies_on_is_unchanged(name):
    """Guards against a Django change silently breaking an override of its internals (or making a hook
    that now runs inline block the event loop)."""
    expected, override, distribution = UPSTREAM[name]
    check_source(name, expected, f"chat.api.{override}", distribution)
