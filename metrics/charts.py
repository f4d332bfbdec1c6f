"""Server-side SVG bar charts for the admin reports (no JavaScript, no external assets).

Written here rather than with a charting library: two bar panels of plain <rect>s are about
forty lines, and a library would add a dependency (or vendored JS) for no gain.
"""

from __future__ import annotations

from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, PANEL_HEIGHT, GAP, LABEL = 720, 90, 28, 16


def _panel(values: list[float], labels: list[str], *, top: int, css: str, title: str, fmt) -> SafeString:
    peak = max(values, default=0) or 1
    slot = WIDTH / max(len(values), 1)
    bar = max(slot * 0.8, 1.0)
    bars = format_html_join(
        "", '<rect class="bar {}" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>',
        ((css, f"{i * slot + (slot - bar) / 2:.2f}", f"{top + PANEL_HEIGHT - PANEL_HEIGHT * v / peak:.2f}",
          f"{bar:.2f}", f"{PANEL_HEIGHT * v / peak:.2f}", labels[i], fmt(v)) for i, v in enumerate(values)),
    )
    return format_html('<text x="0" y="{}" class="chart-title">{} (max {})</text>{}', top - 4, title,
                       fmt(max(values, default=0)), bars)


def daily_bars(series: list[dict]) -> SafeString:
    """Two panels, runs and cost per day, one bar per entry of `series` (day, runs, cost)."""
    labels = [f"{row['day']:%Y-%m-%d}" for row in series]
    runs = [float(row["runs"]) for row in series]
    cost = [float(row["cost"] or Decimal("0")) for row in series]
    height = LABEL + 2 * (PANEL_HEIGHT + GAP)
    runs_panel = _panel(runs, labels, top=LABEL, css="runs", title="Runs per day", fmt=lambda v: f"{v:.0f}")
    cost_panel = _panel(cost, labels, top=LABEL + PANEL_HEIGHT + GAP, css="cost", title="Cost per day (USD)",
                        fmt=lambda v: f"{v:.4f}")
    first, last = (labels[0], labels[-1]) if labels else ("", "")
    axis = format_html('<text x="0" y="{}" class="chart-axis">{}</text>'
                       '<text x="{}" y="{}" text-anchor="end" class="chart-axis">{}</text>',
                       height - 4, first, WIDTH, height - 4, last)
    style = mark_safe(
        "<style>.bar.runs{fill:#417690}.bar.cost{fill:#c2732b}.chart-title,.chart-axis{font:11px sans-serif;"
        "fill:#444}</style>")
    return format_html('<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Runs and cost per day" '
                       'viewBox="0 0 {w} {h}" width="{w}" height="{h}" class="usage-chart">{}{}{}{}</svg>',
                       style, runs_panel, cost_panel, axis, w=WIDTH, h=height)
