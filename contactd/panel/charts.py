"""Bar charts as inline SVG, drawn on the server from the same numbers the JSON API returns.

No chart library: the page needs grouped bars, an axis and a legend, and SVG prints crisply on paper. Colours come
from CSS classes (the CSP forbids inline styles); each bar can be a link (click a bar → that bucket's calls).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 28, 34


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    css: str  # s1 .. s5 in stats.css


def _nice_max(value: float) -> int:
    """An axis maximum ≥ value whose four gridline steps are round whole numbers (1, 2, 5 × 10^n each)."""
    target = max(value, 1) / 4
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= target:
                return step * factor * 4
        step *= 10


def bar_chart(categories: Sequence[str], series: Sequence[Series], *, title: str,
              link: Callable[[int], str | None] | None = None, chart_id: str = "chart") -> Markup:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max([v for s in series for v in s.values] or [0]))
    count = max(len(categories), 1)
    slot = plot_w / count
    bar_w = max(1.0, slot * 0.8 / max(len(series), 1))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for i in range(5):  # gridlines with their value
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    label_every = 1 if count <= 24 else 2
    for index, category in enumerate(categories):
        x0 = LEFT + slot * index + slot * 0.1
        bars = []
        for n, s in enumerate(series):
            value = s.values[index] if index < len(s.values) else 0
            if value <= 0:
                continue
            h = plot_h * value / top
            bars.append(f'<rect class="bar {escape(s.css)}" data-series="{escape(s.label)}" data-value="{value:g}" '
                        f'x="{x0 + n * bar_w:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                        f"<title>{escape(category)} · {escape(s.label)}: {value:g}</title></rect>")
        href = link(index) if link else None
        group = "".join(bars)
        if href and bars:
            group = f'<a href="{escape(href)}" class="bucket" data-bucket="{index}">{group}</a>'
        parts.append(group)
        if index % label_every == 0:
            parts.append(f'<text class="axis" x="{LEFT + slot * (index + 0.5):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(category)}</text>')
    parts.append(f'<line class="base" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    x = LEFT
    for s in series:  # legend along the top
        parts.append(f'<rect class="bar {escape(s.css)}" x="{x}" y="6" width="12" height="12"/>'
                     f'<text class="legend" x="{x + 16}" y="16">{escape(s.label)}</text>')
        x += 26 + 13 * len(s.label)
    parts.append("</svg>")
    return Markup("".join(parts))
