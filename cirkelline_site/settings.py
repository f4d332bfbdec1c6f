"""Django settings for Cirkelline.

This is the only module that reads the environment. Every variable is listed, with a
comment, in `.env.example`. Defaults give a working local server: SQLite under var/, the
in-memory channel layer and the offline `demo` model, no keys needed.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from chat.observability.logs import build_logging

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CIRKELLINE_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win


def _positive_float(name: str, default: float) -> float:
    value = env.float(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, got {value!r}")
    return value


def _non_negative_int(name: str, default: int) -> int:
    value = env.int(name, default=default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be zero or more, got {value!r}")
    return value


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key generated once and kept (0600) under var/.

    A hard-coded fallback would make every default install sign JWTs with a public key.
    """
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _private_sqlite_file(name: str) -> None:
    """Create the SQLite database readable by its owner only, as the secret key is: it holds
    password hashes and every chat. SQLite gives the -wal and -shm files it creates beside it the
    database file's mode; a file an older install left readable to others is tightened."""
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if not path.parent.is_dir():
        return  # Django reports the bad path when it connects
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = file.stat()
        except FileNotFoundError:
            continue
        if info.st_mode & 0o077 and info.st_uid == os.getuid():
            file.chmod(0o600)


SECRET_KEY = _secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # first: its runserver replaces Django's, serving ASGI
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",  # refresh tokens: rotated, used ones refused
    "corsheaders",
    "csp",
    "metrics",
    "chat",
]

# Django's standard middleware, with their hooks run inline on the event loop instead of each
# being handed to a worker thread and back (see chat/api/django_overrides.py).
MIDDLEWARE = [
    # First: every response, even a refused preflight, carries the request id (chat/observability).
    "chat.observability.middleware.RequestIdMiddleware",
    # It answers CORS preflights itself, and is async-native (no thread hop).
    "corsheaders.middleware.CorsMiddleware",
    "chat.api.django_overrides.SecurityMiddleware",
    "chat.api.django_overrides.SessionMiddleware",
    "chat.api.django_overrides.CommonMiddleware",
    "chat.api.django_overrides.CsrfViewMiddleware",
    "chat.api.django_overrides.AuthenticationMiddleware",
    "chat.api.django_overrides.MessageMiddleware",
    "chat.api.django_overrides.XFrameOptionsMiddleware",
    "chat.api.django_overrides.CSPMiddleware",
]

ROOT_URLCONF = "cirkelline_site.urls"
ASGI_APPLICATION = "cirkelline_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
# SQLite under var/ by default; DATABASE_URL (postgres://...) switches to PostgreSQL.
DATABASES = {
    # An empty DATABASE_URL (as .env.example has it) means the default, like an unset one.
    "default": env.db_url_config(env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _private_sqlite_file(str(_db["NAME"]))
    _db.setdefault("OPTIONS", {}).update(
        {
            # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at
            # BEGIN so concurrent writers queue on `timeout` instead of failing.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # SQLite connections are file handles: each database thread keeps its own.
    _db["CONN_MAX_AGE"] = None
    # A file (not :memory:) so live-server tests in a subprocess see the test database.
    _db.setdefault("TEST", {})["NAME"] = str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")
elif _db["ENGINE"] in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
    _db["ENGINE"] = "django.db.backends.postgresql"
    # Under ASGI a persistent connection per thread is wrong; psycopg's pool hands
    # connections out per query batch instead.
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("CIRKELLINE_DB_POOL_MIN", default=1),
        "max_size": env.int("CIRKELLINE_DB_POOL_MAX", default=20),
        "timeout": env.float("CIRKELLINE_DB_POOL_TIMEOUT", default=10.0),
    }
    _db["OPTIONS"].setdefault("connect_timeout", 5)
else:
    raise ImproperlyConfigured(f"DATABASE_URL must be sqlite:// or postgres://, got engine {_db['ENGINE']}")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels ---------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Namespace of Cirkelline's Redis keys (admission leases, live runs, the cancel channel), so
# several deployments can share one Redis.
CIRKELLINE_REDIS_PREFIX = env.str("CIRKELLINE_REDIS_PREFIX", default="cirkelline")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Django's cache holds the failed-login counters (chat/identity/login_throttle.py): in Redis when
# REDIS_URL is set, so every process counts together; in process memory otherwise.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                          "OPTIONS": {"MAX_ENTRIES": 10_000}}}

# --- Auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
# The pages' login cookie: never readable by scripts, not sent on cross-site requests (Secure
# with CIRKELLINE_TLS, below).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Browser API clients on other origins (agno's agent-ui): CORS on the API routes they use,
# bearer tokens only (no cookies cross-origin). Empty: no CORS headers at all.
CORS_ALLOWED_ORIGINS = env.list("CIRKELLINE_CORS_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/(health|config|agents|teams|sessions)(/.*)?$"
CORS_ALLOW_CREDENTIALS = False

# Content-Security-Policy of every response (django-csp): scripts and styles only from this
# site's own static files (no inline script, no CDN); fetch and the websocket to this site only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    # The token routes' errors: a database outage is a 503 with Retry-After, every error has "detail".
    "EXCEPTION_HANDLER": "chat.api.tokens.exception_handler",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("CIRKELLINE_JWT_ACCESS_MINUTES", default=60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("CIRKELLINE_JWT_REFRESH_DAYS", default=7)),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env.str("CIRKELLINE_JWT_SIGNING_KEY", default="") or SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
    # A refresh returns a new refresh token and blacklists the one it used (chat/api/tokens.py).
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}
# Failed logins on /api/token/ allowed per username and per client address within the window
# (seconds); one more is refused with 429 even with the right password. 0 turns a limit off.
CIRKELLINE_LOGIN_FAILURES_PER_USERNAME = _non_negative_int("CIRKELLINE_LOGIN_FAILURES_PER_USERNAME", 10)
CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS = _non_negative_int("CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS", 50)
CIRKELLINE_LOGIN_FAILURE_WINDOW = _positive_float("CIRKELLINE_LOGIN_FAILURE_WINDOW", 900.0)

# --- i18n / static ----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# The chat pages' CSS, JS and vendored libraries (chat.web is a package of the chat app, not an app).
STATICFILES_DIRS = [BASE_DIR / "chat" / "web" / "static"]
# Serve /static/ (admin CSS/JS) from the app itself, with WhiteNoise, unless a proxy does it.
CIRKELLINE_SERVE_STATIC = env.bool("CIRKELLINE_SERVE_STATIC", default=True)
# WhiteNoise indexes the files once, at start-up: those of the apps' static folders (Django's
# finders, so `make run` needs no collectstatic) and STATIC_ROOT (collectstatic's output, if any).
# Only indexed files are served; any other /static/ path is a 404 from Django.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False
if CIRKELLINE_SERVE_STATIC:
    # Last, so the security headers of the middleware above (nosniff, Referrer-Policy,
    # X-Frame-Options, HSTS) are on static responses too.
    MIDDLEWARE.append("cirkelline_site.staticfiles.StaticFilesMiddleware")

# --- TLS --------------------------------------------------------------------------------
# CIRKELLINE_TLS=true: the site is reached over https, directly or through a proxy that sets
# X-Forwarded-Proto (start Daphne with --proxy-headers then). Cookies become Secure, plain http is
# redirected to https (except /health, for load balancer probes) and HSTS is sent.
CIRKELLINE_TLS = env.bool("CIRKELLINE_TLS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = CIRKELLINE_TLS
SECURE_SSL_REDIRECT = CIRKELLINE_TLS and env.bool("CIRKELLINE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$"]
SECURE_HSTS_SECONDS = _non_negative_int("CIRKELLINE_HSTS_SECONDS", 31_536_000) if CIRKELLINE_TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("CIRKELLINE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("CIRKELLINE_HSTS_PRELOAD", default=False)

# --- Cirkelline -------------------------------------------------------------------------
CIRKELLINE_VERSION = "0.1.0"
# The superuser `make run` creates on first start (manage.py ensure_admin).
CIRKELLINE_ADMIN_USERNAME = env.str("CIRKELLINE_ADMIN_USERNAME", default="admin")
CIRKELLINE_ADMIN_PASSWORD = env.str("CIRKELLINE_ADMIN_PASSWORD", default="")
# provider:model_id, e.g. google:gemini-2.5-flash, openai:gpt-4.1-mini, openai-like:llama3.1,
# ollama:llama3.1, demo, scripted. Empty: Gemini when a Google key is set, else OpenAI when an
# OpenAI key is set, else the offline demo.
CIRKELLINE_MODEL = env.str("CIRKELLINE_MODEL", default="")
CIRKELLINE_MODEL_BASE_URL = env.str("CIRKELLINE_MODEL_BASE_URL", default="")
CIRKELLINE_MODEL_API_KEY = env.str("CIRKELLINE_MODEL_API_KEY", default="")
GOOGLE_API_KEY = env.str("GOOGLE_API_KEY", default="") or env.str("GEMINI_API_KEY", default="")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
# Provider SDK clients (connection pools) per server process; runs are spread over them.
CIRKELLINE_PROVIDER_CLIENTS = env.int("CIRKELLINE_PROVIDER_CLIENTS", default=8)
# Per provider call HTTP timeout (s); the run deadline below bounds the whole run.
CIRKELLINE_MODEL_TIMEOUT = _positive_float("CIRKELLINE_MODEL_TIMEOUT", 60.0)

CIRKELLINE_RUN_TIMEOUT = _positive_float("CIRKELLINE_RUN_TIMEOUT", 120.0)
CIRKELLINE_DEEP_RESEARCH_TIMEOUT = _positive_float("CIRKELLINE_DEEP_RESEARCH_TIMEOUT", 600.0)
# A provider call that sends nothing for this long ends the run as timed out; a stream that goes
# quiet this long mid-answer counts as a failed (retried) call.
CIRKELLINE_FIRST_TOKEN_TIMEOUT = _positive_float("CIRKELLINE_FIRST_TOKEN_TIMEOUT", 60.0)
CIRKELLINE_STREAM_IDLE_TIMEOUT = _positive_float("CIRKELLINE_STREAM_IDLE_TIMEOUT", 30.0)
# A member run with no event for this long is recorded as a stalled delegation (member_stalled);
# the run itself goes on to its own deadline.
CIRKELLINE_MEMBER_STALL_SECONDS = _positive_float("CIRKELLINE_MEMBER_STALL_SECONDS", 30.0)
CIRKELLINE_MAX_RETRIES = _non_negative_int("CIRKELLINE_MAX_RETRIES", 2)
CIRKELLINE_RETRY_DELAY = _positive_float("CIRKELLINE_RETRY_DELAY", 1.0)
# A run whose final write fails (database down) is retried in the background for this long,
# first after CIRKELLINE_FLUSH_RETRY_INTERVAL seconds, then with doubling waits (max 30 s).
CIRKELLINE_FLUSH_RETRY_WINDOW = _positive_float("CIRKELLINE_FLUSH_RETRY_WINDOW", 600.0)
CIRKELLINE_FLUSH_RETRY_INTERVAL = _positive_float("CIRKELLINE_FLUSH_RETRY_INTERVAL", 5.0)
# Threads that run ORM work for the run path (chat/storage/executor.py).
CIRKELLINE_DB_THREADS = env.int("CIRKELLINE_DB_THREADS", default=8)
CIRKELLINE_HISTORY_RUNS = _non_negative_int("CIRKELLINE_HISTORY_RUNS", 5)
CIRKELLINE_MAX_MESSAGE_CHARS = _non_negative_int("CIRKELLINE_MAX_MESSAGE_CHARS", 32_000)
# Levels of objects/arrays a JSON body's field (session_state, dependencies, metadata, ...) may
# nest; deeper is a 400 before anything runs. At most 100: agno copies and serialises these values
# recursively, and a few hundred levels exhaust Python's recursion limit mid-run.
CIRKELLINE_MAX_JSON_DEPTH = env.int("CIRKELLINE_MAX_JSON_DEPTH", default=32)
if not 1 <= CIRKELLINE_MAX_JSON_DEPTH <= 100:
    raise ImproperlyConfigured(f"CIRKELLINE_MAX_JSON_DEPTH must be between 1 and 100, got {CIRKELLINE_MAX_JSON_DEPTH}")
# Admission control: concurrent runs per user (across all processes when REDIS_URL is set) and
# per server process. Beyond them a new run gets 429 with Retry-After.
CIRKELLINE_MAX_RUNS_PER_USER = _non_negative_int("CIRKELLINE_MAX_RUNS_PER_USER", 3)
CIRKELLINE_MAX_CONCURRENT_RUNS = _non_negative_int("CIRKELLINE_MAX_CONCURRENT_RUNS", 1000)
CIRKELLINE_MAX_FILES = _non_negative_int("CIRKELLINE_MAX_FILES", 10)
CIRKELLINE_MAX_FILE_BYTES = _non_negative_int("CIRKELLINE_MAX_FILE_BYTES", 20 * 1024 * 1024)
# Whole request bodies (JSON/form, and multipart minus file parts) above this are refused (413).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("CIRKELLINE_MAX_BODY_BYTES", default=25 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# Garbage collector thresholds (gen0,gen1,gen2) for server processes; empty: CPython's defaults.
# See cirkelline_site/process_tuning.py for why the default is raised.
CIRKELLINE_GC_THRESHOLD = tuple(int(x) for x in env.list("CIRKELLINE_GC_THRESHOLD", default=["10000", "20", "100"]))
if CIRKELLINE_GC_THRESHOLD and len(CIRKELLINE_GC_THRESHOLD) != 3:
    raise ImproperlyConfigured("CIRKELLINE_GC_THRESHOLD must be three integers: gen0,gen1,gen2 (or empty)")

# Benchmarks only: a directory where every server process writes its event-loop lag and
# process figures once a second (bench/loopstats.py, around the app as bench/asgi.py serves it). Empty: off.
CIRKELLINE_STATS_DIR = env.str("CIRKELLINE_STATS_DIR", default="")

# The scripted model (CIRKELLINE_MODEL=scripted): seconds per provider call. Tests and bench.
CIRKELLINE_SCRIPTED_LATENCY = env.float("CIRKELLINE_SCRIPTED_LATENCY", default=0.0)

# --- Operations (docs/OPERATIONS.md) --------------------------------------------------------
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
CIRKELLINE_LOOP_STALL_WARN_MS = _non_negative_int("CIRKELLINE_LOOP_STALL_WARN_MS", 500)
# false: no Prometheus observations, no run / retry / admission lines and no loop watch (request
# ids stay). For measuring what they cost (docs/PERFORMANCE.md); production keeps them on.
CIRKELLINE_TELEMETRY = env.bool("CIRKELLINE_TELEMETRY", default=True)

LOGGING = build_logging(
    log_format=CIRKELLINE_LOG_FORMAT,
    level=env.str("CIRKELLINE_LOG_LEVEL", default="INFO"),
    agno_level=env.str("CIRKELLINE_AGNO_LOG_LEVEL", default="WARNING"),
    content=CIRKELLINE_LOG_CONTENT,
)
