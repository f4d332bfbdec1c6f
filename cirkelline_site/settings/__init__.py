"""Django settings for Cirkelline (DJANGO_SETTINGS_MODULE=cirkelline_site.settings).

This package is the only code that reads the environment. Every variable is listed, with a
comment, in `.env.example`. Defaults give a working local server: SQLite under var/, the
in-memory channel layer and the offline `demo` model, no keys needed.

Django's own settings are here; Cirkelline's run settings are in `runs.py`, the operations
settings in `operations.py`, the readers in `readers.py`.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .readers import BASE_DIR, VAR_DIR, env, non_negative_int, positive_float


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
    "chat.personal",
    "chat.knowledge",
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
    # Django's SQLite backend, its write transactions queued in-process (cirkelline_site/db).
    _db["ENGINE"] = "cirkelline_site.db.sqlite3"
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
# Namespace of Cirkelline's Redis keys (admission leases, live runs, the cancel channel, the channel
# layer's groups and channels), so several deployments can share one Redis.
CIRKELLINE_REDIS_PREFIX = env.str("CIRKELLINE_REDIS_PREFIX", default="cirkelline")
# The channel layer's read timeout on its Redis connections. channels_redis waits for a socket's
# next message in a blocking BZPOPMIN that Redis answers (empty) after the layer's
# `brpop_timeout`, 5 s; redis-py 8 gives every connection a default `socket_timeout` of 5 s too,
# so the read gave up just as the empty answer was due, the exception killed the consumer and
# every websocket idle for 5 s was closed with 1011. The timeout must stay well above the
# blocking read (a test pins it against channels_redis); it still bounds how long a command
# waits on a Redis that stopped answering. TCP keepalive (redis-py's default) notices a peer
# that vanished. docs/OPERATIONS.md, "Redis: connections and timeouts".
CHANNEL_LAYER_SOCKET_TIMEOUT = 15.0
# Connections of each of a process's Redis pools (the channel layer's, cirkelline_site/channel_layer.py;
# admission's, the event logs' and the socket quota's, chat/runs/redis_clients.py). A command holds
# one only while it runs, and one finding them all busy waits for the next one released (up to its
# client's read timeout) instead of failing: a burst of websocket connects and watches queues
# briefly at the bound. redis-py's pools raised past 100 instead. docs/OPERATIONS.md, "Redis".
CIRKELLINE_REDIS_MAX_CONNECTIONS = non_negative_int("CIRKELLINE_REDIS_MAX_CONNECTIONS", 100)
if CIRKELLINE_REDIS_MAX_CONNECTIONS < 2:
    raise ImproperlyConfigured("CIRKELLINE_REDIS_MAX_CONNECTIONS must be 2 or more (the channel layer's "
                               f"blocking read holds one), got {CIRKELLINE_REDIS_MAX_CONNECTIONS}")
# Messages waiting in Redis for one process's websockets. channels_redis keeps every socket of a
# process on one Redis key (the process's channel) and counts its capacity (100 unless told) on
# that key, not per socket: a burst of sockets watching their sessions (a presence notice each,
# answered by their peers) filled it, the next group message was dropped and the next direct one
# (a presence answer) raised ChannelFull, closing that socket with 1011. Sized for the sockets a
# worker holds; each waiting message is a few hundred bytes and expires after 60 s.
CIRKELLINE_CHANNEL_LAYER_CAPACITY = non_negative_int("CIRKELLINE_CHANNEL_LAYER_CAPACITY", 2000)
if CIRKELLINE_CHANNEL_LAYER_CAPACITY < 1:
    raise ImproperlyConfigured("CIRKELLINE_CHANNEL_LAYER_CAPACITY must be 1 or more, got 0")


def channel_layers(redis_url: str, prefix: str) -> dict:
    """The channel layer: Redis under `prefix` (a socket's group names hold a user id, which another
    deployment sharing the Redis has too), or in process memory without a Redis URL."""
    if not redis_url:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    host = {"address": redis_url, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT,
            "max_connections": CIRKELLINE_REDIS_MAX_CONNECTIONS, "timeout": CHANNEL_LAYER_SOCKET_TIMEOUT}
    return {"default": {"BACKEND": "cirkelline_site.channel_layer.RedisChannelLayer",
                        "CONFIG": {"hosts": [host], "prefix": f"{prefix}:asgi",
                                   "capacity": CIRKELLINE_CHANNEL_LAYER_CAPACITY}}}


CHANNEL_LAYERS = channel_layers(REDIS_URL, CIRKELLINE_REDIS_PREFIX)

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
# Every login (the pages, the admin, the token route) goes through the failed-login throttle.
AUTHENTICATION_BACKENDS = ["chat.identity.backends.ThrottledModelBackend"]

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
# The cursor of a page of GET /sessions/{id}/runs: a script on another origin may read it.
CORS_EXPOSE_HEADERS = ["X-Next-Before", "Link"]

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
CIRKELLINE_LOGIN_FAILURES_PER_USERNAME = non_negative_int("CIRKELLINE_LOGIN_FAILURES_PER_USERNAME", 10)
CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS = non_negative_int("CIRKELLINE_LOGIN_FAILURES_PER_ADDRESS", 50)
CIRKELLINE_LOGIN_FAILURE_WINDOW = positive_float("CIRKELLINE_LOGIN_FAILURE_WINDOW", 900.0)

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
SECURE_HSTS_SECONDS = non_negative_int("CIRKELLINE_HSTS_SECONDS", 31_536_000) if CIRKELLINE_TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("CIRKELLINE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("CIRKELLINE_HSTS_PRELOAD", default=False)

from .operations import *  # noqa: E402, F403 - logging, metrics, telemetry
from .runs import *  # noqa: E402, F403 - Cirkelline's run settings
