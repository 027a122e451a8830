"""A picture of one forecast: recent actuals, the served forecast and its interval, as a
self-contained HTML page with an inline SVG drawn here (standard library only, no plotting
library, nothing fetched).

The page uses SVG presentation attributes, not `style` attributes or a `<style>` element, so it
renders under the service's strict Content-Security-Policy (`default-src 'none'`) unchanged.
`GET /v1/forecast/plot` and `fluxora plot` both render with `forecast_page`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 960, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 60
ACTUAL, FORECAST, BAND = "#333333", "#1f77b4", "#aec7e8"


@dataclass(frozen=True)
class Picture:
    """What one page shows. Times are timezone-aware UTC; `lower`/`upper` may be empty."""

    series_id: str
    model_version: str
    origin: datetime
    actual_times: Sequence[datetime]
    actual: Sequence[float]
    times: Sequence[datetime]
    point: Sequence[float]
    lower: Sequence[float] = ()
    upper: Sequence[float] = ()
    interval: str = "80 % interval (quantiles 0.1–0.9)"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round values between `lo` and `hi` (1, 2, 2.5 or 5 times a power of ten apart)."""
    if hi <= lo:
        return [lo]
    mag = 10 ** math.floor(math.log10((hi - lo) / n))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= (hi - lo) / n)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(n + 2) if first + i * step <= hi]


def svg(p: Picture) -> str:
    """The chart alone: an `<svg>` element."""
    all_times = [*p.actual_times, *p.times]
    values = [*p.actual, *p.point, *p.lower, *p.upper]
    if not all_times or not values:
        raise ValueError("nothing to draw: no actuals and no forecast")
    t0, t1 = min(all_times).timestamp(), max(all_times).timestamp()
    span = max(t1 - t0, 3600.0)
    v0, v1 = min(values), max(values)
    pad = (v1 - v0) * 0.05 or 1.0
    v0, v1 = v0 - pad, v1 + pad
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + (t.timestamp() - t0) / span * w

    def y(v: float) -> float:
        return TOP + (v1 - v) / (v1 - v0) * h

    def line(ts: Sequence[datetime], vs: Sequence[float]) -> str:
        return " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts, vs, strict=True))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="forecast of {escape(p.series_id)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="#ffffff" stroke="#cccccc"/>',
    ]
    for v in _ticks(v0, v1):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eeeeee"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" '
            f'font-family="sans-serif">{v:g}</text>'
        )
    days = sorted({t.replace(hour=0, minute=0, second=0, microsecond=0) for t in all_times})
    for d in days:
        if t0 <= d.timestamp() <= t1:
            parts.append(f'<line x1="{x(d):.1f}" x2="{x(d):.1f}" y1="{TOP}" y2="{TOP + h}" stroke="#eeeeee"/>')
            parts.append(
                f'<text x="{x(d):.1f}" y="{TOP + h + 16}" text-anchor="middle" font-size="11" '
                f'font-family="sans-serif">{d:%m-%d}</text>'
            )
    if p.lower and p.upper:
        band = line(p.times, p.upper) + " " + line(list(reversed(p.times)), list(reversed(p.lower)))
        parts.append(f'<polygon points="{band}" fill="{BAND}" fill-opacity="0.7" stroke="none"/>')
    if p.actual:
        parts.append(f'<polyline points="{line(p.actual_times, p.actual)}" fill="none" stroke="{ACTUAL}"/>')
    parts.append(f'<polyline points="{line(p.times, p.point)}" fill="none" stroke="{FORECAST}" stroke-width="2"/>')
    xo = x(p.origin)
    parts.append(
        f'<line x1="{xo:.1f}" x2="{xo:.1f}" y1="{TOP}" y2="{TOP + h}" stroke="#999999" stroke-dasharray="4 3"/>'
    )
    legend = [("actual load", ACTUAL), (f"forecast, model version {p.model_version}", FORECAST)]
    if p.lower and p.upper:
        legend.append((p.interval, BAND))
    lx = LEFT
    for label, colour in legend:
        ly = HEIGHT - 18
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="14" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 20}" y="{ly}" font-size="12" font-family="sans-serif">{escape(label)}</text>')
        lx += 30 + 7 * len(label)
    parts.append("</svg>")
    return "\n".join(parts)


def forecast_page(p: Picture) -> str:
    """A whole HTML document around `svg(p)`: title, the origin, then the chart."""
    title = f"Forecast of {p.series_id}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>\n<body>\n'
        f"<h1>{escape(title)}</h1>\n"
        f"<p>Model version {escape(p.model_version)}; forecast origin {p.origin:%Y-%m-%d %H:%M} UTC; "
        f"{len(p.times)} hours ahead; {len(p.actual)} hours of actuals (UTC).</p>\n"
        f"{svg(p)}\n</body></html>\n"
    )
