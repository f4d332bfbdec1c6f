"""metrics is a leaf app: it never imports chat or agno (the import-linter contract will say the same)."""

import ast
from pathlib import Path

METRICS = Path(__file__).resolve().parents[2] / "metrics"


def test_metrics_never_imports_chat_or_agno():
    """Guards against the reporting app depending on the run path (or agno) it measures."""
    offenders = []
    for path in METRICS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("chat", "agno")]
    assert offenders == []
