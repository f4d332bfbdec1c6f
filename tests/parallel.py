"""How the suite runs in parallel (pytest-xdist): each test process's environment, set before
Django's settings are imported (pytest.ini loads this module with `-p`, ahead of pytest-django),
and the order in which the tests are dealt out to the workers.

Under pytest-xdist the workers run at the same time, so each gets a var/ directory of its own,
emptied when it starts: its SQLite test database, uploads, Prometheus multiprocess files, admin
password and secret key, which the servers it starts (tests/live.py) inherit. Every test process,
serial or not, gets a Redis namespace of its own (Cirkelline's keys and the channel layer's
groups), so suites running side by side on one Redis never see each other's runs or sockets.
PostgreSQL test databases are pytest-django's (test_<name>_gw0, _gw1, ... per worker); server
ports are tests/live.py's.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _worker_var_dir(worker: str) -> Path:
    base = Path(os.environ.get("CIRKELLINE_VAR_DIR") or ROOT / "var")
    var = base / "test-workers" / worker
    shutil.rmtree(var, ignore_errors=True)  # what an earlier run's worker of that name left
    var.mkdir(parents=True)
    return var


if WORKER:
    _var = _worker_var_dir(WORKER)
    os.environ["CIRKELLINE_VAR_DIR"] = str(_var)
    # A metrics directory given outside would be shared by the workers: /metrics adds up every
    # process's files there, so one worker's requests would show in another's counts.
    os.environ["CIRKELLINE_METRICS_DIR"] = str(_var / "metrics")
# Redis keys and channel-layer groups of this test process live apart from any server's, other
# workers' and earlier runs'. Read at settings import (CHANNEL_LAYERS) and by tests.conftest: one
# prefix for both, or a group send from a test never reaches the live servers it starts.
os.environ["CIRKELLINE_REDIS_PREFIX"] = f"cirkelline-test-{WORKER or 'serial'}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _is_live(item: pytest.Item) -> bool:
    return item.get_closest_marker("live") is not None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Within each of pytest-django's blocks (tests in a rolled-back transaction, then transactional
    tests, then tests without the database), the files that start servers go first, so that no
    long file is left to run alone at the end. The blocks themselves keep their order: a
    transactional test empties the tables when it ends, so a test of the first block (which may
    read rows the migrations seeded, such as the price list) never runs after one on the same worker.
    """
    if not items:
        return
    _give_unique_ids(items)
    blocks: list[list[pytest.Item]] = []
    previous_block = None
    for item in items:
        block = _django_block(item)
        if block != previous_block:
            blocks.append([])
            previous_block = block
        blocks[-1].append(item)
    ordered = []
    for block_items in blocks:
        live_files = {item.path for item in block_items if _is_live(item)}
        ordered += sorted(block_items, key=lambda item: item.path not in live_files)  # stable
    items[:] = ordered


def _give_unique_ids(items: list[pytest.Item]) -> None:
    """xdist knows a test by its id alone: tests sharing an id would all run as the first of them.
    schemathesis's tests of one function (one per API operation) carry the operation in their name
    (`test_x[POST /uploads]`) but, under pytest 9, not in their id; it is put there."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and item.name.endswith("]") and "[" in item.name:
            base, params = item.name[:-1].split("[", 1)
            item._id = item.parent.id.child(base).with_params(params)
    duplicated = sorted(nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1)
    if duplicated:
        raise pytest.UsageError(f"tests sharing an id (pytest-xdist would run only one of each): {duplicated}")


def _django_block(item: pytest.Item) -> int:
    cls = getattr(item, "cls", None)
    if cls is not None:
        from django.test import TestCase, TransactionTestCase

        if issubclass(cls, TransactionTestCase):
            return 0 if issubclass(cls, TestCase) else 1
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", ())
    if marker is not None and (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences")) \
            or "transactional_db" in fixtures or "live_server" in fixtures:
        return 1
    if marker is not None or "db" in fixtures:
        return 0
    return 2


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile`, keeping the order above: a file's tests go to one worker together (they
    share its module-scoped servers and browser), but its tests of different blocks are separate
    units, and the units are dealt out in collection order rather than largest first."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class BlockedFileScheduling(LoadScopeScheduling):
        def schedule(self) -> None:
            config.option.loadscopereorder = False
            collection = next(iter(self.registered_collections.values()), [])
            self.scope_of = _file_runs(collection)
            super().schedule()

        def _split_scope(self, nodeid: str) -> str:
            return self.scope_of.get(nodeid) or nodeid.split("::", 1)[0]

    return BlockedFileScheduling(config, log)


def _file_runs(collection: list[str]) -> dict[str, str]:
    """Each test's work unit: its file, and which stretch of that file's tests in the collection
    (a file's tests of different blocks are apart)."""
    scope_of, runs, previous = {}, {}, None
    for nodeid in collection:
        path = nodeid.split("::", 1)[0]
        if path != previous:
            runs[path] = runs.get(path, -1) + 1
            previous = path
        scope_of[nodeid] = f"{path}#{runs[path]}"
    return scope_of
