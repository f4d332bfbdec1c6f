#!/usr/bin/env bash
# Run N Cirkelline workers on one host, on consecutive ports, for nginx (deploy/nginx/) in front.
#
#   DATABASE_URL=postgres://... REDIS_URL=redis://... deploy/run-workers.sh 4 8001
#
# starts workers on 127.0.0.1:8001..8004 and stays in the foreground. SIGTERM or Ctrl-C is passed
# to every worker, which drains (finishes or cancels its runs, closes its websockets with 1012)
# before it exits. Several workers need PostgreSQL and Redis: they share sessions, usage,
# admission counts, cancels and resumable streams through them.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS="${1:-2}"
FIRST_PORT="${2:-8001}"
PYTHON="${PYTHON:-.venv/bin/python}"

if [[ -z "${DATABASE_URL:-}" || -z "${REDIS_URL:-}" ]]; then
  echo "run-workers: several workers need DATABASE_URL (PostgreSQL) and REDIS_URL" >&2
  exit 2
fi
# Every worker writes its Prometheus metrics here, and /metrics on any worker reads them all.
export CIRKELLINE_METRICS_DIR="${CIRKELLINE_METRICS_DIR:-var/metrics}"
mkdir -p "$CIRKELLINE_METRICS_DIR"

"$PYTHON" manage.py migrate --noinput

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop TERM INT

for ((i = 0; i < WORKERS; i++)); do
  port=$((FIRST_PORT + i))
  # --proxy-headers: the client address comes from nginx's X-Forwarded-For. Websocket messages
  # over the application's own limit (CIRKELLINE_WS_MAX_FRAME_BYTES) are cut off by Daphne (1009).
  "$PYTHON" -m daphne -e "tcp:port=${port}:interface=127.0.0.1:backlog=2048" --proxy-headers \
    --ping-interval 20 --ping-timeout 30 --websocket-max-message-size "${CIRKELLINE_WS_MAX_FRAME_BYTES:-524288}" \
    cirkelline_site.asgi:application &
  pids+=($!)
  echo "run-workers: worker $((i + 1)) on 127.0.0.1:${port} (pid $!)"
done
wait
