"""Cirkelline's overrides of Django internals: the standard middleware without a thread hop per hook,
and the CSRF check the API makes for cookie-authenticated writes. tests/api/test_django_drift.py
pins Django's version and the source of each upstream function these rely on.

The middleware (a saving: "Django's middleware hooks run inline" in docs/PERFORMANCE.md). Under
ASGI, Django runs every `MiddlewareMixin` hook (`process_request`, `process_response`,
`process_view`) through `sync_to_async(thread_sensitive=True)`: with the seven middleware of
this project that is a dozen hand-offs to a worker thread and back for every request, all
queueing on one thread during a burst. These hooks only inspect and decorate the request and
response (headers, cookies, CSRF tokens, lazy user and session objects), so here they run
inline on the event loop. The one hook that can touch the database, saving a modified
session, still goes to a thread.

Each class subclasses the Django original, so system checks and `isinstance` tests still
recognise it; in synchronous use (the test client, management commands) they behave exactly
like the originals. They replace `MiddlewareMixin.__acall__` (and depend on how it calls the
hooks); settings.MIDDLEWARE names them.

`CsrfCheck` (a bug fix): Django's CSRF check answers a failure with its HTML 403 page (through
`CsrfViewMiddleware._reject`); the API must answer JSON `{"detail": ...}`, so `_reject` returns
the reason instead and chat.api.auth raises the API's 403 with it.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from csp import middleware as csp_middleware
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security


class _Inline:
    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self.aprocess_response(request, response)
        return response

    async def aprocess_response(self, request, response):
        return self.process_response(request, response)


class SecurityMiddleware(_Inline, security.SecurityMiddleware):
    pass


class SessionMiddleware(_Inline, sessions.SessionMiddleware):
    async def aprocess_response(self, request, response):
        session = getattr(request, "session", None)
        if session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) \
                and not session.is_empty():
            # Saving writes to the database: that part stays off the event loop.
            return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
        return self.process_response(request, response)


class CommonMiddleware(_Inline, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(_Inline, csrf.CsrfViewMiddleware):
    async def process_view(self, request, callback, callback_args, callback_kwargs):
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(_Inline, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(_Inline, messages.MessageMiddleware):
    pass


class XFrameOptionsMiddleware(_Inline, clickjacking.XFrameOptionsMiddleware):
    pass


class CSPMiddleware(_Inline, csp_middleware.CSPMiddleware):
    """django-csp's Content-Security-Policy header (a MiddlewareMixin: same thread-hop reason)."""


class CsrfCheck(csrf.CsrfViewMiddleware):
    """Django's CSRF check, giving the reason of a failure instead of Django's 403 page."""

    def _reject(self, request, reason):
        return reason
