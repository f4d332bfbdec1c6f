"""docs/OPERATIONS.md and the Grafana dashboard name only metrics the server exports, and every one of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chat.observability import prom

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bcirkelline_[a-z0-9_]+")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def _queries(dashboard: dict) -> list[str]:
    queries = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            queries += [target["expr"] for target in inner.get("targets", [])]
    return queries


def test_every_dashboard_query_names_metrics_the_server_exports():
    """Guards against a dashboard panel that stays empty because its metric was renamed or never existed."""
    dashboard = json.loads((ROOT / "docs" / "grafana-cirkelline.json").read_text())
    queries = _queries(dashboard)
    assert len(queries) >= 20
    exported = prom.exported_names()
    for query in queries:
        names = set(METRIC.findall(query))
        assert names, f"a query without a Cirkelline metric: {query}"
        assert names <= exported, f"{query} names {names - exported}, which the server does not export"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p.get("targets") for p in panels)


def test_operations_md_documents_every_metric_and_no_other():
    """Guards against a metric operators cannot look up, and docs or alerts naming metrics that do not exist."""
    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    mentioned = set(METRIC.findall(text)) - {"cirkelline_site"}  # the Django project's package, not a metric
    exported = prom.exported_names()
    histograms = {name.removesuffix("_bucket") for name in exported if name.endswith("_bucket")}
    assert mentioned <= exported | histograms, mentioned - exported - histograms
    families = {name.removesuffix(s) for name in exported for s in SUFFIXES if name.endswith(s)} | {
        name for name in exported if not name.endswith(SUFFIXES)}
    undocumented = {f for f in families if not any(m.startswith(f) for m in mentioned)}
    assert undocumented == set()
