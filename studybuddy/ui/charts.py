"""Small charts drawn on the server as inline SVG: no chart library, no script, readable without JavaScript.

Both return markup built only from numbers and escaped labels, for templates to insert as `Markup`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 320, 120, 24


def finished_chart(points: Sequence[tuple[float, int]], total: int) -> str:
    """Finished videos over time, as a line from (0, 0) to the latest point; `total` tops the y axis."""
    span_s = max((t for t, _ in points), default=0.0) or 1.0
    top = max(total, 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    coords = " ".join(
        f"{PAD + inner_w * t / span_s:.1f},{HEIGHT - PAD - inner_h * n / top:.1f}" for t, n in points
    )
    last = points[-1][1] if points else 0
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">'
        f"<title>Finished videos over time: {last} of {total} after {span_s:.0f} s</title>"
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<polyline points="{coords}" class="line" fill="none"/>'
        f'<text x="{PAD}" y="{PAD - 6}" class="label">{top}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" class="label" text-anchor="end">{span_s:.0f} s</text>'
        "</svg>"
    )


def blocks_chart(blocks: Sequence[tuple[str, int]], shown: int = 8) -> str:
    """Blocked answers per exit (label, count), the most blocked first, as horizontal bars."""
    rows = sorted(blocks, key=lambda item: (-item[1], item[0]))[:shown]
    if not rows:
        return '<p class="muted">No exit was blocked in this run.</p>'
    most = max(count for _, count in rows)
    bar_h = 14
    height = len(rows) * (bar_h + 4) + 4
    bars = []
    for index, (label, count) in enumerate(rows):
        y = 4 + index * (bar_h + 4)
        width = (WIDTH - 140) * count / most
        bars.append(
            f'<text x="0" y="{y + bar_h - 3}" class="label">{escape(label)}</text>'
            f'<rect x="100" y="{y}" width="{width:.1f}" height="{bar_h}" class="bar"/>'
            f'<text x="{104 + width:.1f}" y="{y + bar_h - 3}" class="label">{count}</text>'
        )
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">'
        f"<title>Blocked answers per exit</title>{''.join(bars)}</svg>"
    )
