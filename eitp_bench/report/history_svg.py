"""The history site's trend figure, drawn as inline SVG by hand: one metric of one panel over run time.

A nightly rebuild redraws nearly every series page (every series gets a point a night), so a page must
be cheap: matplotlib spent most of a page's time laying out thousands of points, while the figure is a
few straight elements (points, bands, lines, ticks) that are written here as text. Every text and link
is escaped; the figure scales with the page (viewBox) and links each point to its run.
"""

from __future__ import annotations

import html
import math

BLUE = "#4c72b0"
REGRESSION, IMPROVEMENT, CANDIDATE = "#c44e52", "#55a868", "#8c8c8c"
WIDTH, HEIGHT = 620, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 22, 78  # plot margins: y labels, title, x labels + legend


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2, 5 × 10^k steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def trend(panel, *, unit: str, title: str, hrefs: list[str]) -> str:
    """Points over run time (each a link to its hrefs[i], a URL with nothing to escape), the noise band
    and median of each stretch between confirmed changes, confirmed changes as solid lines (red
    regression, green improvement, with the relative change) and unconfirmed change-point candidates
    dotted grey; dates below, values left."""
    import numpy as np
    import pandas as pd

    points = panel.points
    times = pd.to_datetime([p.started_at for p in points], utc=True, format="ISO8601")
    # seconds since the epoch (asi8 is in the index's own unit, which parsing may make s, ms, us or ns)
    t = np.asarray((times - pd.Timestamp(0, tz="UTC")).total_seconds(), dtype=float) if len(points) else np.zeros(0)
    v = np.array([p.value for p in points], dtype=float)
    bands = [(s.low, s.high, s.median) for s in panel.segments]
    lows = [x for b in bands for x in b[:2]] + list(v)
    y0, y1 = (min(lows), max(lows)) if lows else (0.0, 1.0)
    if y1 <= y0:
        y0, y1 = y0 - (abs(y0) * 0.05 or 1.0), y1 + (abs(y1) * 0.05 or 1.0)
    pad = (y1 - y0) * 0.06
    y0, y1 = y0 - pad, y1 + pad
    t0, t1 = (float(t.min()), float(t.max())) if len(t) else (0.0, 1.0)
    if t1 <= t0:
        t0, t1 = t0 - 43200, t1 + 43200
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(sec):
        return LEFT + (sec - t0) / (t1 - t0) * pw

    def y(val):
        return TOP + (y1 - val) / (y1 - y0) * ph

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {HEIGHT}' width='{WIDTH}' "
           f"height='{HEIGHT}' role='img' font-family='sans-serif' font-size='10'>",
           f"<title>{_e(title)}</title>",
           f"<text x='{LEFT + pw / 2:.1f}' y='13' text-anchor='middle' font-size='11'>{_e(title)}</text>",
           f"<rect x='{LEFT}' y='{TOP}' width='{pw}' height='{ph}' fill='none' stroke='#bbb'/>"]
    for tick in nice_ticks(y0, y1):
        yy = y(tick)
        out.append(f"<line x1='{LEFT - 4}' x2='{LEFT + pw}' y1='{yy:.1f}' y2='{yy:.1f}' stroke='#eee'/>"
                   f"<text x='{LEFT - 6}' y='{yy + 3:.1f}' text-anchor='end'>{tick:.4g}</text>")
    out.append(f"<text transform='translate(12 {TOP + ph / 2:.1f}) rotate(-90)' text-anchor='middle'>"
               f"{_e(unit or 'value')}</text>")
    for tick in _date_ticks(t0, t1):
        xx = x(tick.timestamp())
        out.append(f"<line x1='{xx:.1f}' x2='{xx:.1f}' y1='{TOP + ph}' y2='{TOP + ph + 4}' stroke='#888'/>"
                   f"<text x='{xx:.1f}' y='{TOP + ph + 15}' text-anchor='middle'>{tick:%Y-%m-%d}</text>")
    for seg in panel.segments:
        if seg.stop <= seg.start:
            continue
        xa, xb = x(t[seg.start]), x(t[seg.stop - 1])
        out.append(f"<rect x='{xa:.1f}' y='{y(seg.high):.1f}' width='{max(xb - xa, 1.5):.1f}' "
                   f"height='{max(y(seg.low) - y(seg.high), 0.5):.1f}' fill='{BLUE}' fill-opacity='0.15'/>"
                   f"<line x1='{xa:.1f}' x2='{max(xb, xa + 1.5):.1f}' y1='{y(seg.median):.1f}' "
                   f"y2='{y(seg.median):.1f}' stroke='{BLUE}' stroke-opacity='0.7' stroke-width='0.8'/>")
    legend = {"noise band (median ± 2 robust sd)": (BLUE, "band")}
    for c in panel.changes:
        if not 0 <= c.index < len(t):
            continue
        color = (REGRESSION if c.kind == "regression" else IMPROVEMENT) if c.confirmed else CANDIDATE
        xx = x(t[c.index])
        dash = "" if c.confirmed else " stroke-dasharray='2 2'"
        out.append(f"<line x1='{xx:.1f}' x2='{xx:.1f}' y1='{TOP}' y2='{TOP + ph}' stroke='{color}' "
                   f"stroke-width='{1.6 if c.confirmed else 1.0}'{dash}/>")
        if c.confirmed:
            out.append(f"<text x='{xx + 3:.1f}' y='{TOP + 10}' fill='{color}'>{100 * c.relative:+.1f} %</text>")
        label = f"confirmed {c.kind}" if c.confirmed else "change-point candidate (not confirmed)"
        legend.setdefault(label, (color, "line" if c.confirmed else "dotted"))
    xs, ys = (x(t) if len(t) else t).tolist(), (y(v) if len(v) else v).tolist()  # numpy: all points at once
    # thousands of points on a large store: the fewest bytes per point (the points table has the values)
    out.append(f"<g fill='{BLUE}'>")
    out.extend(f"<a href='{href}'><circle cx='{cx:.1f}' cy='{cy:.1f}' r='2.6'/></a>"
               for href, cx, cy in zip(hrefs, xs, ys))
    out.append("</g>")
    out.append(_legend(legend, TOP + ph + 34))
    out.append("</svg>")
    return "".join(out)


def _date_ticks(t0: float, t1: float, count: int = 5) -> list:
    """About `count` dates (UTC midnights) between two epoch seconds."""
    import pandas as pd

    start, stop = pd.Timestamp(t0, unit="s", tz="UTC"), pd.Timestamp(t1, unit="s", tz="UTC")
    days = max((stop - start).days, 0)
    step = max(1, math.ceil(days / max(count - 1, 1)))
    first = start.ceil("D")
    ticks = [first + pd.Timedelta(days=i * step) for i in range(days // step + 1)]
    return [tick for tick in ticks if tick <= stop] or [start]


def _legend(items: dict, top: float) -> str:
    out = []
    for i, (label, (color, style)) in enumerate(items.items()):
        xx, yy = LEFT + (i % 2) * 280, top + (i // 2) * 14
        dash = " stroke-dasharray='2 2'" if style == "dotted" else ""
        mark = (f"<rect x='{xx}' y='{yy - 7}' width='14' height='8' fill='{color}' fill-opacity='0.3'/>"
                if style == "band" else
                f"<line x1='{xx}' x2='{xx + 14}' y1='{yy - 3}' y2='{yy - 3}' stroke='{color}' stroke-width='1.6'{dash}/>")
        out.append(f"{mark}<text x='{xx + 18}' y='{yy}'>{_e(label)}</text>")
    return "".join(out)
