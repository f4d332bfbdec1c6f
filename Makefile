# Cirkelline: `make run` serves the app, `make test` runs the test suite.
# Both set up .venv on first use (and again whenever a requirements file changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 7777
# The suite runs in parallel (pytest-xdist; tests/parallel.py): 4 workers on a 2-core machine, as
# many tests wait on servers, sockets and the database (docs/PERFORMANCE.md: 3 workers took 3 min
# 43 s on SQLite and 5 min 01 s on PostgreSQL + Redis, 4 took 3 min 13 s and 4 min 35 s). A
# file's tests stay on one worker.
# `make test PYTEST_ARGS="-n 0"` runs it in one process; PYTEST_ARGS=tests/api/test_api.py one file.
PYTEST_WORKERS ?= 4

.PHONY: run test install install-dev migrate lint agent-ui bench-smoke clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --noinput

# Websockets get a ping after 20 s without a frame from the client (and are closed when it goes
# unanswered for 30 s): a proxy's idle timeout (nginx's proxy_read_timeout) never cuts a quiet one.
run: migrate
	$(PY) manage.py ensure_admin
	@echo "Cirkelline on http://$(HOST):$(PORT)  (admin: http://$(HOST):$(PORT)/admin/)"
	$(PY) -m daphne -e tcp:port=$(PORT):interface=$(HOST):backlog=2048 --ping-interval 20 --ping-timeout 30 \
		--websocket-max-message-size 524288 cirkelline_site.asgi:application

test: install-dev
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# ruff, and the import direction between chat's packages (.importlinter, docs/ARCHITECTURE.md).
lint: install-dev
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache

# agno's agent-ui, for its browser test (tests/web/agent_ui.py): built once per machine into
# ~/.cache/cirkelline-agent-ui/<hash of its source>/ (npm reaches its registry); fails loudly.
agent-ui: install-dev
	$(PY) -m tests.web.agent_ui build

clean:
	rm -rf $(VENV) var/*.sqlite3* var/test-db-* var/test-workers
