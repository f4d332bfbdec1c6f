"""Cirkelline's own settings: the model, run deadlines, retries, limits, process tuning."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .readers import env, non_negative_float, non_negative_int, positive_float

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
# How OpenAI-compatible models stream a provider call: "lean" (chat/agents/openai_lean.py: the
# same request and the same deltas without the SDK's per-call work) or "sdk" (agno's stock call
# through the openai SDK).
CIRKELLINE_MODEL_CLIENT = env.str("CIRKELLINE_MODEL_CLIENT", default="lean").strip().lower()
if CIRKELLINE_MODEL_CLIENT not in ("lean", "sdk"):
    raise ImproperlyConfigured(f"CIRKELLINE_MODEL_CLIENT must be lean or sdk, got {CIRKELLINE_MODEL_CLIENT!r}")
# The provider SDK clients' HTTP transport: "aiohttp" (the openai SDK's own DefaultAioHttpClient:
# aiohttp's C HTTP parser and connection pool under the SDK's httpx2 client) or "httpx" (the SDK's
# default httpx2 transport: h11 and httpcore, pure Python). Clients a model brings keep their own.
CIRKELLINE_PROVIDER_HTTP = env.str("CIRKELLINE_PROVIDER_HTTP", default="aiohttp").strip().lower()
if CIRKELLINE_PROVIDER_HTTP not in ("aiohttp", "httpx"):
    raise ImproperlyConfigured(f"CIRKELLINE_PROVIDER_HTTP must be aiohttp or httpx, got {CIRKELLINE_PROVIDER_HTTP!r}")
# Per provider call HTTP timeout (s); the run deadline below bounds the whole run.
CIRKELLINE_MODEL_TIMEOUT = positive_float("CIRKELLINE_MODEL_TIMEOUT", 60.0)

CIRKELLINE_RUN_TIMEOUT = positive_float("CIRKELLINE_RUN_TIMEOUT", 120.0)
CIRKELLINE_DEEP_RESEARCH_TIMEOUT = positive_float("CIRKELLINE_DEEP_RESEARCH_TIMEOUT", 600.0)
# A provider call that sends nothing for this long ends the run as timed out; a stream that goes
# quiet this long mid-answer counts as a failed (retried) call.
CIRKELLINE_FIRST_TOKEN_TIMEOUT = positive_float("CIRKELLINE_FIRST_TOKEN_TIMEOUT", 60.0)
CIRKELLINE_STREAM_IDLE_TIMEOUT = positive_float("CIRKELLINE_STREAM_IDLE_TIMEOUT", 30.0)
# A member run with no event for this long is recorded as a stalled delegation (member_stalled);
# the run itself goes on to its own deadline.
CIRKELLINE_MEMBER_STALL_SECONDS = positive_float("CIRKELLINE_MEMBER_STALL_SECONDS", 30.0)
# What a client going away (a closed tab, a dropped connection) does to its run: "continue" (the
# run goes on to its deadline, is stored and can be resumed: docs/API.md) or "cancel" (it stops).
CIRKELLINE_ON_DISCONNECT = env.str("CIRKELLINE_ON_DISCONNECT", default="continue")
if CIRKELLINE_ON_DISCONNECT not in ("continue", "cancel"):
    raise ImproperlyConfigured(f"CIRKELLINE_ON_DISCONNECT must be continue or cancel, got {CIRKELLINE_ON_DISCONNECT!r}")
# A streamed run's event log (chat/runs/eventlog.py), which resumed streams and other tabs read:
# kept this many seconds after the run ended (in Redis with REDIS_URL, in the process otherwise),
# and at most this many entries per run (older ones are dropped first).
CIRKELLINE_EVENT_LOG_TTL = positive_float("CIRKELLINE_EVENT_LOG_TTL", 600.0)
# A run paused for its user (a question, a confirmation) can be continued for this long after it
# paused; later it is expired (usage status `expired`, run CANCELLED) and continuing it is a 409.
CIRKELLINE_PAUSE_TTL_SECONDS = positive_float("CIRKELLINE_PAUSE_TTL_SECONDS", 86_400.0)
# A streamed response (a run's, a resumed one's) quiet for this long gets an SSE comment (`: ping`),
# so that a proxy's or load balancer's idle timeout (nginx's proxy_read_timeout: 60 s by default)
# never cuts a live run whose members work silently. 0: no heartbeats.
CIRKELLINE_SSE_HEARTBEAT_SECONDS = non_negative_float("CIRKELLINE_SSE_HEARTBEAT_SECONDS", 15.0)
# On SIGTERM (or Ctrl-C) a server process drains (chat/runs/drain.py): no new runs (503 with
# Retry-After; /ready 503), its live runs may finish for this many seconds, the rest are cancelled
# with their rows written, its websockets are closed with 1012, then it exits. 0: cancel at once.
CIRKELLINE_DRAIN_SECONDS = non_negative_float("CIRKELLINE_DRAIN_SECONDS", 30.0)
CIRKELLINE_EVENT_LOG_MAXLEN = env.int("CIRKELLINE_EVENT_LOG_MAXLEN", default=10_000)
if CIRKELLINE_EVENT_LOG_MAXLEN < 100:
    raise ImproperlyConfigured(f"CIRKELLINE_EVENT_LOG_MAXLEN must be at least 100, got {CIRKELLINE_EVENT_LOG_MAXLEN}")
CIRKELLINE_MAX_RETRIES = non_negative_int("CIRKELLINE_MAX_RETRIES", 2)
CIRKELLINE_RETRY_DELAY = positive_float("CIRKELLINE_RETRY_DELAY", 1.0)
# A run whose final write fails (database down) is retried in the background for this long,
# first after CIRKELLINE_FLUSH_RETRY_INTERVAL seconds, then with doubling waits (max 30 s).
CIRKELLINE_FLUSH_RETRY_WINDOW = positive_float("CIRKELLINE_FLUSH_RETRY_WINDOW", 600.0)
CIRKELLINE_FLUSH_RETRY_INTERVAL = positive_float("CIRKELLINE_FLUSH_RETRY_INTERVAL", 5.0)
# Threads that run ORM work for the run path (chat/storage/executor.py).
CIRKELLINE_DB_THREADS = env.int("CIRKELLINE_DB_THREADS", default=8)
CIRKELLINE_HISTORY_RUNS = non_negative_int("CIRKELLINE_HISTORY_RUNS", 5)
# After a session's first answer, ask the model for a short title in the background (one small
# model call, billed as a usage row of kind `naming`; chat/runs/naming.py). False: a session keeps
# the name of its first message.
CIRKELLINE_AUTO_NAME_SESSIONS = env.bool("CIRKELLINE_AUTO_NAME_SESSIONS", default=True)
# Seconds that naming call may take, retries included; past it the first-message name stays.
CIRKELLINE_NAMING_TIMEOUT = positive_float("CIRKELLINE_NAMING_TIMEOUT", 30.0)
CIRKELLINE_MAX_MESSAGE_CHARS = non_negative_int("CIRKELLINE_MAX_MESSAGE_CHARS", 32_000)
# Characters a user's custom instructions (their profile) may hold; they go into every run's prompt.
CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX = non_negative_int("CIRKELLINE_CUSTOM_INSTRUCTIONS_MAX", 2_000)
# Memories a user may keep (the memory manager reads them all into its prompt each time it
# changes one, so this bounds what that model call costs); at the limit, adding one is refused.
CIRKELLINE_MEMORIES_MAX = non_negative_int("CIRKELLINE_MEMORIES_MAX", 500)
# Levels of objects/arrays a JSON body's field (session_state, dependencies, metadata, ...) may
# nest; deeper is a 400 before anything runs. At most 100: agno copies and serialises these values
# recursively, and a few hundred levels exhaust Python's recursion limit mid-run.
CIRKELLINE_MAX_JSON_DEPTH = env.int("CIRKELLINE_MAX_JSON_DEPTH", default=32)
if not 1 <= CIRKELLINE_MAX_JSON_DEPTH <= 100:
    raise ImproperlyConfigured(f"CIRKELLINE_MAX_JSON_DEPTH must be between 1 and 100, got {CIRKELLINE_MAX_JSON_DEPTH}")
# Admission control: concurrent runs per user (across all processes when REDIS_URL is set) and
# per server process. Beyond them a new run gets 429 with Retry-After.
CIRKELLINE_MAX_RUNS_PER_USER = non_negative_int("CIRKELLINE_MAX_RUNS_PER_USER", 3)
CIRKELLINE_MAX_CONCURRENT_RUNS = non_negative_int("CIRKELLINE_MAX_CONCURRENT_RUNS", 1000)
# A server process that dies mid-run (kill -9, OOM, a lost host) cannot end its runs: every
# process renews a lease every CIRKELLINE_WORKER_HEARTBEAT_SECONDS (one database write, whatever
# its runs), valid CIRKELLINE_WORKER_LEASE_SECONDS; every CIRKELLINE_REAPER_INTERVAL_SECONDS
# (and when it starts) each process closes the runs whose worker's lease expired: status error,
# error_type worker_lost, billed for the calls they completed, their admission slots freed
# (chat/runs/reaper.py). A loop stalled longer than lease - heartbeat would lose its runs.
CIRKELLINE_WORKER_HEARTBEAT_SECONDS = positive_float("CIRKELLINE_WORKER_HEARTBEAT_SECONDS", 10.0)
CIRKELLINE_WORKER_LEASE_SECONDS = positive_float("CIRKELLINE_WORKER_LEASE_SECONDS", 45.0)
if CIRKELLINE_WORKER_LEASE_SECONDS < 2 * CIRKELLINE_WORKER_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("CIRKELLINE_WORKER_LEASE_SECONDS must be at least twice "
                               "CIRKELLINE_WORKER_HEARTBEAT_SECONDS (one late heartbeat must not lose a worker's runs)")
CIRKELLINE_REAPER_INTERVAL_SECONDS = positive_float("CIRKELLINE_REAPER_INTERVAL_SECONDS", 15.0)
# A running run's completed provider calls are written to its usage row (its live ledger) at most
# this many seconds after they complete, for every run of the process in one statement, so a run
# whose worker dies is billed for them. 0: at the next turn of the event loop (more writes).
CIRKELLINE_LIVE_LEDGER_SECONDS = env.float("CIRKELLINE_LIVE_LEDGER_SECONDS", default=0.5)
if CIRKELLINE_LIVE_LEDGER_SECONDS < 0:
    raise ImproperlyConfigured(
        f"CIRKELLINE_LIVE_LEDGER_SECONDS must be zero or more, got {CIRKELLINE_LIVE_LEDGER_SECONDS}")
CIRKELLINE_MAX_FILES = non_negative_int("CIRKELLINE_MAX_FILES", 10)
CIRKELLINE_MAX_FILE_BYTES = non_negative_int("CIRKELLINE_MAX_FILE_BYTES", 20 * 1024 * 1024)
# Request bodies, per route (chat/api/limits.py), refused with a 413 on their Content-Length and
# while they are read, before anything parses them. The API's small routes (rename, feedback,
# profile, memories, cancel, resume, the token routes): CIRKELLINE_MAX_API_BODY_BYTES. A run's
# JSON or form body: CIRKELLINE_MAX_RUN_BODY_BYTES. A multipart body (uploads, a run with files):
# the files' own limits (CIRKELLINE_MAX_FILES x CIRKELLINE_MAX_FILE_BYTES) plus a run body for its
# fields. A document (POST /knowledge/content): CIRKELLINE_KNOWLEDGE_MAX_BYTES plus a run body.
# Every other route (pages, admin): CIRKELLINE_MAX_BODY_BYTES. Django's DATA_UPLOAD_MAX_MEMORY_SIZE
# (a body minus its file parts) is the largest of them, set below.
CIRKELLINE_MAX_API_BODY_BYTES = non_negative_int("CIRKELLINE_MAX_API_BODY_BYTES", 64 * 1024)
CIRKELLINE_MAX_RUN_BODY_BYTES = non_negative_int("CIRKELLINE_MAX_RUN_BODY_BYTES", 512 * 1024)
CIRKELLINE_MAX_BODY_BYTES = non_negative_int("CIRKELLINE_MAX_BODY_BYTES", 2 * 1024 * 1024)
# JSON (a body, a form's JSON fields, a websocket frame) longer than this is parsed in a worker
# thread (CIRKELLINE_PARSE_THREADS of them), not on the event loop: parsing costs ~0.2 s of CPU per
# MiB of small objects, a stall for every other request if done on the loop.
CIRKELLINE_PARSE_OFF_LOOP_BYTES = non_negative_int("CIRKELLINE_PARSE_OFF_LOOP_BYTES", 16 * 1024)
CIRKELLINE_PARSE_THREADS = env.int("CIRKELLINE_PARSE_THREADS", default=2)
# The chat websocket (chat/ws/limits.py; close codes in docs/API.md): the largest frame before the
# socket has authenticated (an auth frame is a few hundred bytes) and after; larger ones close the
# socket with 1009. Frames per second per socket, with a burst: past it a frame is refused with an
# error frame, and a socket going on regardless is closed with 1008. Open sockets per user, across
# every process with REDIS_URL: one more is refused with 4429.
CIRKELLINE_WS_MAX_UNAUTH_FRAME_BYTES = non_negative_int("CIRKELLINE_WS_MAX_UNAUTH_FRAME_BYTES", 8 * 1024)
CIRKELLINE_WS_MAX_FRAME_BYTES = non_negative_int("CIRKELLINE_WS_MAX_FRAME_BYTES", 512 * 1024)
CIRKELLINE_WS_FRAMES_PER_SECOND = positive_float("CIRKELLINE_WS_FRAMES_PER_SECOND", 10.0)
CIRKELLINE_WS_FRAME_BURST = positive_float("CIRKELLINE_WS_FRAME_BURST", 40.0)
CIRKELLINE_WS_MAX_SOCKETS_PER_USER = non_negative_int("CIRKELLINE_WS_MAX_SOCKETS_PER_USER", 20)
if CIRKELLINE_PARSE_THREADS < 1:
    raise ImproperlyConfigured(f"CIRKELLINE_PARSE_THREADS must be 1 or more, got {CIRKELLINE_PARSE_THREADS}")

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

# Documents ("My documents", chat/knowledge): an upload's bytes (more is a 413), the pages and
# characters of text kept from one document (more fails its processing, saying why), the documents
# a user may keep, and how long processing may take before a document still `processing` is
# reported failed (its server process died).
CIRKELLINE_KNOWLEDGE_MAX_BYTES = non_negative_int("CIRKELLINE_KNOWLEDGE_MAX_BYTES", 10 * 1024 * 1024)
CIRKELLINE_KNOWLEDGE_MAX_PAGES = non_negative_int("CIRKELLINE_KNOWLEDGE_MAX_PAGES", 500)
CIRKELLINE_KNOWLEDGE_MAX_CHARS = non_negative_int("CIRKELLINE_KNOWLEDGE_MAX_CHARS", 2_000_000)
CIRKELLINE_KNOWLEDGE_MAX_DOCUMENTS = non_negative_int("CIRKELLINE_KNOWLEDGE_MAX_DOCUMENTS", 200)
CIRKELLINE_KNOWLEDGE_PROCESS_TIMEOUT = positive_float("CIRKELLINE_KNOWLEDGE_PROCESS_TIMEOUT", 300.0)
# Django's own limit on a body's non-file parts: the per-route limits (chat/api/limits.py) are
# tighter where they apply; this only has to let the largest of them through.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(CIRKELLINE_MAX_BODY_BYTES, CIRKELLINE_MAX_RUN_BODY_BYTES,
                                  CIRKELLINE_KNOWLEDGE_MAX_BYTES + CIRKELLINE_MAX_RUN_BODY_BYTES)
FILE_UPLOAD_MAX_MEMORY_SIZE = max(CIRKELLINE_MAX_BODY_BYTES, CIRKELLINE_MAX_FILE_BYTES)
# An embedding model for documents (`openai:<id>`, or `openai-like:<id>` with
# CIRKELLINE_EMBEDDING_BASE_URL): chunks are embedded at upload and questions at search, and the
# vector ranking is fused with the lexical one. Empty: lexical search only (works offline).
CIRKELLINE_EMBEDDING_MODEL = env.str("CIRKELLINE_EMBEDDING_MODEL", default="")
CIRKELLINE_EMBEDDING_BASE_URL = env.str("CIRKELLINE_EMBEDDING_BASE_URL", default="")
# The embedding endpoint's key; empty: OPENAI_API_KEY.
CIRKELLINE_EMBEDDING_API_KEY = env.str("CIRKELLINE_EMBEDDING_API_KEY", default="")
