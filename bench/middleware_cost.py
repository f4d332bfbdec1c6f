"""BENCH ONLY: what one async middleware costs per request against WhiteNoise's stock (sync) one.

    .venv/bin/python -m bench.middleware_cost --requests 3000 --rounds 5

Why: WhiteNoise 6.12's Django middleware is synchronous; last in the chain, it makes Django hand
every request (API runs included) to a worker thread and back to the loop for the view, the hop
that cirkelline_site/staticfiles.py (WhiteNoise as async middleware) avoids. This serves
`GET /health` in-process through Django's ASGI handler, built once with the project's
MIDDLEWARE and once with WhiteNoise's own middleware in the static middleware's place, in
alternating rounds, and reports the process CPU (all threads) and wall time per request of each.
No server, no network, no database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time


def _handlers() -> dict[str, object]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cirkelline_site.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler
    from django.test.utils import override_settings

    ours = "cirkelline_site.staticfiles.StaticFilesMiddleware"
    if ours not in settings.MIDDLEWARE:
        raise SystemExit("CIRKELLINE_SERVE_STATIC is off: there is no static middleware to compare")
    stock = [("whitenoise.middleware.WhiteNoiseMiddleware" if m == ours else m) for m in settings.MIDDLEWARE]
    handlers = {"async (staticfiles.py)": ASGIHandler()}
    with override_settings(MIDDLEWARE=stock):
        handlers["WhiteNoise's sync middleware"] = ASGIHandler()
    return handlers


async def _get(app, path: str) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
    status = 0
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _round(app, requests: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        assert await _get(app, "/health") == 200
    return (time.process_time() - cpu) / requests * 1e6, (time.perf_counter() - wall) / requests * 1e6


async def main(requests: int, rounds: int) -> None:
    handlers = _handlers()
    for app in handlers.values():  # warm up
        await _round(app, 200)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in handlers}
    for _ in range(rounds):
        for name, app in handlers.items():
            results[name].append(await _round(app, requests))
    print(f"GET /health in-process, {requests} requests x {rounds} alternating rounds (median per request)")
    for name, values in results.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"  {name:32s} CPU {cpu:7.1f} µs   wall {wall:7.1f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
