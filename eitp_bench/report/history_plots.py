"""The history site's trend figure: one metric over nights, one panel per hardware profile, as inline SVG."""

from __future__ import annotations

from eitp_bench.report.plots import _COLORS, escape, plt, to_svg

REGRESSION, IMPROVEMENT, CANDIDATE = "#c44e52", "#55a868", "#8c8c8c"


def trend(panel, *, unit: str, title: str, point_href) -> str:
    """Points over run time (each links to point_href(run_id)), the noise band per stretch between
    confirmed changes, confirmed changes as solid lines (red regression, green improvement) and
    unconfirmed change-point candidates dotted grey."""
    import pandas as pd

    times = pd.to_datetime([p.started_at for p in panel.points], utc=True, format="ISO8601")
    values = [p.value for p in panel.points]
    fig, ax = plt.subplots(figsize=(6.2, 2.8))
    for seg in panel.segments:
        span = times[seg.start:seg.stop]
        ax.fill_between(span, seg.low, seg.high, color=_COLORS[0], alpha=0.15, lw=0,
                        label="noise band (median ± 2 robust sd)" if seg.start == 0 else None)
        ax.plot(span, [seg.median] * len(span), color=_COLORS[0], lw=0.8, alpha=0.7)
    dots = ax.scatter(times, values, s=14, color=_COLORS[0], zorder=3)
    dots.set_urls([point_href(p.run_id) for p in panel.points])
    shown = set()
    for c in panel.changes:
        if not 0 <= c.index < len(times):
            continue
        color = (REGRESSION if c.kind == "regression" else IMPROVEMENT) if c.confirmed else CANDIDATE
        label = f"confirmed {c.kind}" if c.confirmed else "change-point candidate (not confirmed)"
        ax.axvline(times[c.index], color=color, lw=1.6 if c.confirmed else 1.0, ls="-" if c.confirmed else ":",
                   label=None if label in shown else label, zorder=2)
        shown.add(label)
        if c.confirmed:
            ax.annotate(f"{100 * c.relative:+.1f} %", (times[c.index], max(values)), color=color, fontsize=8,
                        xytext=(3, 0), textcoords="offset points", va="top")
    ax.set_ylabel(escape(unit or "value"))
    ax.set_title(escape(title), fontsize=8)
    fig.autofmt_xdate()
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2)
    return to_svg(fig)
