"""The server's logs: their format (text or JSON lines), their redaction, and the operational lines.

the settings call `build_logging` (it stays the only reader of the environment). Every line
carries the request id and run id (request_id.RequestContextFilter). CIRKELLINE_LOG_FORMAT=json
writes one JSON object per line with python-json-logger.

Redaction, on every line our handlers write (whatever logger wrote it):
- always: Authorization headers, bearer tokens, JWTs, provider API keys (sk-..., AIza...),
  `password=` / `api_key=` / `token=` / `secret=` values, and the values of the secrets this
  server is configured with (the Django secret key, provider keys, the metrics token, the
  database and admin passwords). Nothing needs them to debug, so no setting lets them through;
- unless CIRKELLINE_LOG_CONTENT=true: the user's message text and the provider's error text
  (which can quote the prompt) are left out of the lines below, which log their length instead;
  and agno's DEBUG output (whole prompts and answers) is raised to INFO.

The operational lines (one per finished run, per provider retry, per refused admission) are
written by the functions at the end, which the run service calls.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

run_logger = logging.getLogger("cirkelline.run")
provider_logger = logging.getLogger("cirkelline.provider")
admission_logger = logging.getLogger("cirkelline.admission")

REDACTED = "[redacted]"
_KEY_NAMES = ("password", "passwd", "secret", "api_key", "api-key", "apikey", "access_token", "access-token",
              "refresh_token", "refresh-token")
# (words that must appear in the lower-cased line for the pattern to be tried, pattern, replacement):
# most lines contain none of the words, so they cost a few substring checks, not a regex scan each.
_PATTERNS = [
    (("authorization",),
     re.compile(r"(?i)\b((?:proxy-)?authorization)(\s*['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|basic|token)\s+)?"
                r"[^\s,;'\"}]+"),
     r"\1\2" + REDACTED),
    (("bearer",), re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer " + REDACTED),
    (("eyj",), re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (("sk-", "rk-"), re.compile(r"\b(?:sk|rk)-[A-Za-z0-9_-]{16,}"), REDACTED),
    (("aiza",), re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),
    (_KEY_NAMES, re.compile(r"(?i)(" + "|".join(re.escape(k) for k in _KEY_NAMES) + r")(['\"]?\s*[:=]\s*['\"]?)"
                            r"[^\s'\",;}&]+"), r"\1\2" + REDACTED),
]
_SECRET_SETTINGS = ("SECRET_KEY", "OPENAI_API_KEY", "GOOGLE_API_KEY", "CIRKELLINE_MODEL_API_KEY",
                    "CIRKELLINE_METRICS_TOKEN", "CIRKELLINE_ADMIN_PASSWORD")
_MIN_SECRET = 8  # shorter configured values would match ordinary words


def _configured_secrets() -> list[str]:
    if not settings.configured:
        return []
    found = [getattr(settings, name, "") for name in _SECRET_SETTINGS]
    found.append((getattr(settings, "SIMPLE_JWT", None) or {}).get("SIGNING_KEY", ""))
    found.append(settings.DATABASES.get("default", {}).get("PASSWORD", ""))
    return [s for s in found if isinstance(s, str) and len(s) >= _MIN_SECRET]


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with secrets replaced (see the module docstring); `secrets`: _configured_secrets()."""
    for secret in _configured_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    lowered = text.lower()
    for words, pattern, replacement in _PATTERNS:
        for word in words:
            if word in lowered:
                text = pattern.sub(replacement, text)
                break
    return text


def content_logged() -> bool:
    return bool(getattr(settings, "CIRKELLINE_LOG_CONTENT", False))


def _kv_value(value: Any) -> str:
    text = "" if value is None else str(value)
    if not text or re.search(r"[\s\"=]", text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`time level logger [request_id run_id] message key=value ...`, redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(run_id)s] %(message)s",
                         defaults={"request_id": "-", "run_id": "-"})

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        names: Iterable[str] = getattr(record, "kv", ())
        if names:
            pairs = " ".join(f"{name}={_kv_value(getattr(record, name, None))}" for name in names)
            head, sep, rest = line.partition("\n")  # pairs stay on the first line, before a traceback
            line = f"{head} {pairs}{sep}{rest}"
        return redact(line)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id, run_id, the line's fields."""

    def __init__(self) -> None:
        super().__init__(["levelname", "name", "message", "request_id", "run_id"],
                         rename_fields={"levelname": "level", "name": "logger"}, timestamp="time",
                         reserved_attrs=[*RESERVED_ATTRS, "kv"], json_ensure_ascii=False)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        secrets = _configured_secrets()
        return {key: _redact_value(value, secrets) for key, value in log_data.items()}


def _redact_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_redact_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v, secrets) for k, v in value.items()}
    return value


def build_logging(*, log_format: str, level: str, agno_level: str, content: bool) -> dict[str, Any]:
    """The LOGGING setting. `log_format` is "text" or "json"."""
    if log_format not in ("text", "json"):
        raise ValueError(f"CIRKELLINE_LOG_FORMAT must be text or json, got {log_format!r}")
    if not content and agno_level.upper() == "DEBUG":
        agno_level = "INFO"
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "chat.observability.request_id.RequestContextFilter"}},
        "formatters": {
            "text": {"()": "chat.observability.logs.TextFormatter"},
            "json": {"()": "chat.observability.logs.JsonLineFormatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": formatter, "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.server": {"level": "WARNING"},
            # agno logs provider errors at ERROR with the full provider message; the run service
            # reports them itself, once, without request payloads.
            "agno": {"level": agno_level},
            # One INFO line per provider HTTP request is noise (and CPU) at any real load.
            "httpx": {"level": "WARNING"},
            "httpx2": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


# --- the operational lines -------------------------------------------------------------------

_RUN_FIELDS = ("run_id", "request_id", "user_id", "session_id", "team_id", "model", "status", "error_type",
               "input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cache_read_tokens",
               "cache_write_tokens", "cost_usd", "duration_ms", "ttft_ms", "model_calls", "retries",
               "backoff_seconds", "delegations", "member_runs", "deep_research", "streamed")
_QUIET_STATUSES = frozenset({"completed", "cancelled", "paused"})  # paused: waiting for its user


def _emit(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    extra = {k: v for k, v in fields.items() if v is not None}
    extra["kv"] = tuple(k for k in extra if k != "request_id")  # the text prefix names the request
    logger.log(level, message, extra=extra)


def _content(fields: dict[str, Any], name: str, text: str | None) -> None:
    if not text:
        return
    if content_logged():
        fields[name] = text[:2000]
    else:
        fields[name + "_chars"] = len(text)


def log_run_finished(usage_fields: dict[str, Any], *, cost: Any = None, message: str | None = None) -> None:
    """The one line of a finished run, from its usage fields (the RunUsage row's values).

    `cost`: USD when priced (None: not priced, left out). `message`: the user's message, logged
    only with CIRKELLINE_LOG_CONTENT=true (else its length). The provider's error text
    (`error_message`) likewise.
    """
    fields = {name: usage_fields.get(name) for name in _RUN_FIELDS if name != "cost_usd"}
    fields["cost_usd"] = None if cost is None else float(cost)
    _content(fields, "user_message", message)
    _content(fields, "error_detail", usage_fields.get("error_message"))
    level = logging.INFO if usage_fields.get("status") in _QUIET_STATUSES else logging.WARNING
    _emit(run_logger, level, "run finished", fields)


def log_provider_retry(*, reason: str, status_code: int | None, attempt: int, delay_s: float, mid_stream: bool,
                       detail: str | None = None) -> None:
    """A failed provider call about to be retried (`detail`: the provider's error text, content-gated)."""
    fields: dict[str, Any] = {"reason": reason, "status_code": status_code, "attempt": attempt,
                              "delay_s": round(delay_s, 3), "mid_stream": mid_stream}
    _content(fields, "error_detail", detail)
    _emit(provider_logger, logging.INFO, "provider call retried", fields)


def log_admission_refused(*, scope: str, user_id: Any, retry_after: float, limit: int | None = None) -> None:
    """A run refused admission (429): `scope` "user" (the user's limit) or "process" (this process's)."""
    _emit(admission_logger, logging.WARNING, "run refused admission",
          {"scope": scope, "user_id": user_id, "limit": limit, "retry_after": retry_after})


def log_delegation_failure(*, kind: str, member: str, live: bool, excerpt: str | None = None) -> None:
    """A delegation failure found in a run (`live`: while it streams, i.e. a stalled member).

    `excerpt` (the leader's sentence, the tool call, the error) is content: logged only with
    CIRKELLINE_LOG_CONTENT=true, else its length.
    """
    fields: dict[str, Any] = {"kind": kind, "member": member, "live": live}
    _content(fields, "excerpt", excerpt)
    _emit(run_logger, logging.WARNING, "delegation failure", fields)
