"""Operations settings (docs/OPERATIONS.md): log format, Prometheus, the loop watch, telemetry."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from chat.observability.logs import build_logging

from .readers import VAR_DIR, env, non_negative_int

# Log lines as text or JSON lines; message text and provider error text in them only when true.
CIRKELLINE_LOG_FORMAT = env.str("CIRKELLINE_LOG_FORMAT", default="text")
if CIRKELLINE_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"CIRKELLINE_LOG_FORMAT must be text or json, got {CIRKELLINE_LOG_FORMAT!r}")
CIRKELLINE_LOG_CONTENT = env.bool("CIRKELLINE_LOG_CONTENT", default=False)
# Bearer token Prometheus sends to /metrics (empty: only staff sessions may read it).
CIRKELLINE_METRICS_TOKEN = env.str("CIRKELLINE_METRICS_TOKEN", default="")
# Where every worker process writes its metrics (prometheus-client's multiprocess mode); the
# workers of one deployment share it. It must be set before prometheus-client is imported.
CIRKELLINE_METRICS_DIR = env.str("CIRKELLINE_METRICS_DIR", default="") or str(VAR_DIR / "metrics")
Path(CIRKELLINE_METRICS_DIR).mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = CIRKELLINE_METRICS_DIR
# An event-loop stall longer than this logs a warning with the blocking stack (0: no warnings).
CIRKELLINE_LOOP_STALL_WARN_MS = non_negative_int("CIRKELLINE_LOOP_STALL_WARN_MS", 500)
# false: no Prometheus observations, no run / retry / admission lines and no loop watch (request
# ids stay). For measuring what they cost (docs/PERFORMANCE.md); production keeps them on.
CIRKELLINE_TELEMETRY = env.bool("CIRKELLINE_TELEMETRY", default=True)

LOGGING = build_logging(
    log_format=CIRKELLINE_LOG_FORMAT,
    level=env.str("CIRKELLINE_LOG_LEVEL", default="INFO"),
    agno_level=env.str("CIRKELLINE_AGNO_LOG_LEVEL", default="WARNING"),
    content=CIRKELLINE_LOG_CONTENT,
)
