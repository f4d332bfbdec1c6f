"""/metrics (Prometheus, protected) and /ready (readiness for load balancers and orchestrators).

/metrics answers a staff member's Django session or `Authorization: Bearer
<CIRKELLINE_METRICS_TOKEN>` (compared in constant time; an empty token setting accepts no
bearer), anyone else gets 403. It renders every worker's metrics (prom.render) in a thread:
reading the metric files is disk I/O, kept off the event loop.

/ready checks what a request needs: the database (`SELECT 1` in a thread of its own, so a hung
database cannot take the run path's threads) and, when REDIS_URL is set, Redis (PING), each
within READY_TIMEOUT. 200 `{"status": "ready", "checks": {...}}`, or 503 naming what is down.
A process that is draining (SIGTERM: chat.runs.drain) answers 503 `"status": "draining"` at once,
checking nothing, so the proxy stops sending it work while it finishes its runs.
/health stays the cheap liveness answer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import lifecycle, prom

logger = logging.getLogger(__name__)

READY_TIMEOUT = 2.0
# Two threads: a probe every few seconds needs one; a second lets the next probe answer while a
# hung check's thread waits out its connect timeout.
_ready_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cirkelline-ready")


def _refuse(http_status: int, detail: str, **extra) -> JsonResponse:
    return JsonResponse({"detail": detail, **extra}, status=http_status)


def _bearer_ok(request: HttpRequest) -> bool:
    expected = settings.CIRKELLINE_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not expected or scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


async def _staff_session(request: HttpRequest) -> bool:
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False  # no session: no database lookup
    user = await request.auser()
    return bool(user.is_active and user.is_staff)


@csrf_exempt  # read-only; an unsafe method gets a 405, not a CSRF 403
async def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        response = _refuse(405, f"Method {request.method} is not allowed here.")
        response["Allow"] = "GET, HEAD"
        return response
    if not (_bearer_ok(request) or await _staff_session(request)):
        return _refuse(403, "Metrics need a staff session or the metrics bearer token.")
    body, content_type = await asyncio.get_running_loop().run_in_executor(None, prom.render)
    return HttpResponse(body, content_type=content_type)


def _ping_database() -> None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        close_old_connections()  # a pooled connection goes back; a broken one is dropped


async def _check_database() -> None:
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.run_in_executor(_ready_threads, _ping_database), READY_TIMEOUT)


async def _check_redis() -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=READY_TIMEOUT,
                                     socket_timeout=READY_TIMEOUT)
    try:
        await asyncio.wait_for(client.ping(), READY_TIMEOUT)
    finally:
        await client.aclose()


async def _outcome(name: str, check) -> tuple[str, str]:
    try:
        await check()
    except TimeoutError:
        return name, "timed out"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type says which
        logger.warning("readiness: %s is down (%s)", name, type(exc).__name__)
        return name, f"down ({type(exc).__name__})"
    return name, "ok"


@csrf_exempt
async def ready(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        response = _refuse(405, f"Method {request.method} is not allowed here.")
        response["Allow"] = "GET, HEAD"
        return response
    if lifecycle.draining():
        return _refuse(503, "Not ready: this server is shutting down (draining its runs).", status="draining",
                       checks={})
    checks = [_outcome("database", _check_database)]
    if settings.REDIS_URL:
        checks.append(_outcome("redis", _check_redis))
    results = dict(await asyncio.gather(*checks))
    down = [name for name, state in results.items() if state != "ok"]
    if down:
        return _refuse(503, f"Not ready: {' and '.join(down)} unavailable.", status="unavailable", checks=results)
    return JsonResponse({"status": "ready", "checks": results})
