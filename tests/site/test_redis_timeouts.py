"""The Redis clients' read timeouts fit the reads they make (docs/OPERATIONS.md, "Redis").

The channel layer blocks in BZPOPMIN for channels_redis's `brpop_timeout`: its connections' read
timeout must outlast that wait, or every websocket quiet for that long is closed with 1011 (the
redis-py 8 default of 5 s equals it). Checked on the settings as a server builds them with
REDIS_URL set, in a subprocess (this test process may run without Redis); nothing connects.
The cancel listener's reads are tested on Redis in tests/runs/test_cancel_listener.py, idle
websockets across two processes in tests/ws/test_idle.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYER = """
import json, django
django.setup()
from channels.layers import get_channel_layer
layer = get_channel_layer()
pool = layer.create_pool(0)
connection = pool.connection_class(**pool.connection_kwargs)
print(json.dumps({"read_timeout": connection.socket_timeout, "brpop_timeout": layer.brpop_timeout,
                  "prefix": layer.prefix, "pool": type(pool).__name__, "max_connections": pool.max_connections,
                  "pool_timeout": pool.timeout, "capacity": layer.capacity}))
"""


def test_the_channel_layers_read_timeout_outlasts_its_blocking_read(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", LAYER], cwd=ROOT, capture_output=True, text=True,
        env={"DJANGO_SETTINGS_MODULE": "cirkelline_site.settings", "CIRKELLINE_VAR_DIR": str(tmp_path),
             "REDIS_URL": "redis://127.0.0.1:9/0", "CIRKELLINE_REDIS_PREFIX": "acme", "PATH": "/usr/bin:/bin",
             "CIRKELLINE_REDIS_MAX_CONNECTIONS": "250", "CIRKELLINE_CHANNEL_LAYER_CAPACITY": "5000"},
    )
    assert result.returncode == 0, result.stderr
    layer = json.loads(result.stdout)
    # Redis answers an empty BZPOPMIN up to its timer resolution late, plus the network: a margin
    # of the blocking read's own length, at least.
    assert layer["read_timeout"] is not None and layer["read_timeout"] >= 2 * layer["brpop_timeout"], layer
    # and the layer's keys live in the deployment's namespace, like Cirkelline's own
    assert layer["prefix"] == "acme:asgi"
    # A command finding every connection busy waits for one (redis-py's own pool raised past 100:
    # a burst of websocket connects closed the sockets past it with 1011, tests/ws/test_burst.py),
    # as long as it would wait for Redis's answer; the bound and the capacity as configured.
    assert layer["pool"] == "BlockingConnectionPool", layer
    assert layer["pool_timeout"] == layer["read_timeout"], layer
    assert (layer["max_connections"], layer["capacity"]) == (250, 5000), layer
