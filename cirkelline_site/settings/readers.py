"""The environment readers every settings module uses: `env` (django-environ, `.env` loaded) and
typed readers that fail loudly (ImproperlyConfigured) on a bad value; the project's folders."""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("CIRKELLINE_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win


def positive_float(name: str, default: float) -> float:
    value = env.float(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, got {value!r}")
    return value


def non_negative_int(name: str, default: int) -> int:
    value = env.int(name, default=default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be zero or more, got {value!r}")
    return value


def non_negative_float(name: str, default: float) -> float:
    value = env.float(name, default=default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be zero or more, got {value!r}")
    return value
