"""Log lines: the run/retry/admission lines and their fields, JSON that parses, content and secrets kept out."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from chat.observability import hooks
from chat.observability.logs import JsonLineFormatter, TextFormatter, log_admission_refused
from chat.observability.request_id import RequestContextFilter, bind_run, request_id_var

ROOT = Path(__file__).resolve().parents[2]
DIARY = "my very private diary entry about Copenhagen"
USAGE = {"run_id": "run-1", "user_id": 42, "session_id": "session-1", "team_id": "cirkelline", "model": "openai:gpt-x",
         "status": "error", "error_type": "provider_error", "error_message": f"upstream said: {DIARY}",
         "input_tokens": 120, "output_tokens": 30, "total_tokens": 150, "reasoning_tokens": 0, "duration_ms": 2300,
         "ttft_ms": 410, "retries": 2, "delegations": 1, "member_runs": 1, "model_calls": 3, "streamed": True}


def _in_context(fn, request_id: str = "req-7", run_id: str = "run-1"):
    """Call `fn` as code of a request's run would: with its request id and run id in context."""
    token = request_id_var.set(request_id)
    try:
        bind_run(run_id)
        return fn()
    finally:
        request_id_var.reset(token)


def test_the_run_line_carries_every_field_and_no_message_text_by_default(log_lines):
    """Guards against the run line missing a field an operator needs, and against message text (or the
    provider's error text, which can quote it) reaching the logs when content logging is off."""
    _in_context(lambda: hooks.run_finished(USAGE, cost="0.0042", message=DIARY))
    line = next(r for r in log_lines.records if r.name == "cirkelline.run")
    assert line.levelno == logging.WARNING  # a failed run
    for name, expected in [("request_id", "req-7"), ("run_id", "run-1"), ("user_id", 42), ("team_id", "cirkelline"),
                           ("model", "openai:gpt-x"), ("status", "error"), ("error_type", "provider_error"),
                           ("input_tokens", 120), ("output_tokens", 30), ("total_tokens", 150), ("cost_usd", 0.0042),
                           ("duration_ms", 2300), ("ttft_ms", 410), ("retries", 2), ("delegations", 1),
                           ("user_message_chars", len(DIARY))]:
        assert getattr(line, name) == expected, name
    assert "Copenhagen" not in log_lines.text and DIARY not in log_lines.text
    assert "[req-7 run-1] run finished run_id=run-1 user_id=42" in log_lines.text
    assert "cost_usd=0.0042" in log_lines.text and "ttft_ms=410" in log_lines.text


def test_message_text_is_logged_when_content_logging_is_on(log_lines, settings):
    """Guards against CIRKELLINE_LOG_CONTENT=true not reaching the lines (nothing to debug a run with)."""
    settings.CIRKELLINE_LOG_CONTENT = True
    _in_context(lambda: hooks.run_finished(USAGE, message=DIARY))
    hooks.provider_retry(status_code=503, attempt=1, delay_s=1.25, mid_stream=False, detail=f"echo: {DIARY}")
    assert log_lines.text.count(DIARY) == 3  # the message, the run's error text, the retry's error text
    assert "cost_usd" not in log_lines.text  # an unpriced run has no cost field


def test_the_retry_and_admission_lines(log_lines):
    """Guards against retries and refusals that leave no line (or a line without why and for whom)."""
    hooks.provider_retry(status_code=429, attempt=2, delay_s=0.75, mid_stream=True, detail="slow down")
    log_admission_refused(scope="user", user_id=42, retry_after=5, limit=3)
    retry = next(r for r in log_lines.records if r.name == "cirkelline.provider")
    assert (retry.reason, retry.status_code, retry.attempt, retry.delay_s, retry.mid_stream) == (
        "rate_limited", 429, 2, 0.75, True)
    assert retry.error_detail_chars == len("slow down") and "slow down" not in log_lines.text
    refused = next(r for r in log_lines.records if r.name == "cirkelline.admission")
    assert refused.levelno == logging.WARNING and (refused.scope, refused.user_id, refused.limit) == ("user", 42, 3)
    assert "run refused admission scope=user user_id=42 limit=3 retry_after=5" in log_lines.text


@pytest.mark.parametrize("content", [False, True])
def test_secrets_never_reach_the_logs(log_lines, settings, content):
    """Guards against keys, tokens, passwords and Authorization headers in log lines, whatever logged them."""
    settings.CIRKELLINE_LOG_CONTENT = content
    settings.OPENAI_API_KEY = "configured-provider-key-1234"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjo0Mn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    log = logging.getLogger("some.library")
    log.warning("request headers: {'Authorization': 'Bearer %s'}", jwt)
    log.warning("retrying with api_key=configured-provider-key-1234 and password: hunter2hunter2")
    log.warning("openai said: invalid key sk-proj-abcdefghijklmnopqrstuvwx; token=%s", jwt)
    try:
        raise RuntimeError(f"failed calling https://x.example/?key=AIzaSyA1234567890abcdefghijklmnopqrstu {jwt}")
    except RuntimeError:
        log.exception("a crash")
    text = log_lines.text
    for secret in (jwt, "configured-provider-key-1234", "hunter2hunter2", "sk-proj-abcdefghijklmnopqrstuvwx",
                   "AIzaSyA1234567890abcdefghijklmnopqrstu", "c2lnbmF0dXJl"):
        assert secret not in text
    assert text.count("[redacted]") >= 6 and "RuntimeError" in text


def test_json_lines_parse_with_their_fields_and_redacted_tracebacks(caplog):
    """Guards against CIRKELLINE_LOG_FORMAT=json writing lines a log pipeline cannot parse, or losing the fields."""
    caplog.handler.addFilter(RequestContextFilter())
    caplog.handler.setFormatter(JsonLineFormatter())
    caplog.set_level(logging.INFO)
    _in_context(lambda: hooks.run_finished({**USAGE, "status": "completed", "error_type": ""}, cost=0.5,
                                           message=DIARY))
    try:
        raise ValueError('quote " and a secret Bearer abc.def.ghi')
    except ValueError:
        logging.getLogger("some.library").exception("with a traceback")
    lines = [json.loads(line) for line in caplog.text.splitlines() if line.startswith("{")]
    run, crash = lines
    assert run["logger"] == "cirkelline.run" and run["level"] == "INFO" and run["message"] == "run finished"
    assert (run["request_id"], run["run_id"], run["status"], run["input_tokens"], run["cost_usd"]) == (
        "req-7", "run-1", "completed", 120, 0.5)
    assert run["user_message_chars"] == len(DIARY) and "kv" not in run and run["time"].endswith("+00:00")
    assert crash["request_id"] == "-" and "ValueError" in crash["exc_info"] and "abc.def" not in crash["exc_info"]


def test_the_server_logs_through_the_formatter_and_filter_settings_chose(settings):
    """Guards against LOGGING not wiring the request-id filter or the chosen format into the console handler."""
    console = next(h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
                   and not type(h).__name__.startswith("LogCapture"))
    assert isinstance(console.formatter, TextFormatter)
    assert any(isinstance(f, RequestContextFilter) for f in console.filters)
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "text"


def test_json_format_is_chosen_by_the_setting_and_a_bad_format_stops_start_up():
    """Guards against CIRKELLINE_LOG_FORMAT being ignored, or a typo silently logging text."""
    code = ("import django, logging; django.setup(); logging.getLogger('probe').warning('hello'); "
            "from chat.observability.logs import JsonLineFormatter; "
            "assert isinstance(logging.getLogger().handlers[0].formatter, JsonLineFormatter)")
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "cirkelline_site.settings",
           "CIRKELLINE_LOG_FORMAT": "json", "CIRKELLINE_VAR_DIR": str(ROOT / "var")}
    good = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    line = json.loads(good.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello" and line["logger"] == "probe" and line["request_id"] == "-"
    bad = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT,
                         env={**env, "CIRKELLINE_LOG_FORMAT": "xml"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "CIRKELLINE_LOG_FORMAT must be text or json" in bad.stderr
