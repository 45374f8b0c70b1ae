"""Matplotlib figures rendered to inline SVG markup (Agg backend, no external files).

Every function returns an `<svg>…</svg>` string we generated ourselves, so the
template may inline it unescaped. Text stays text (svg.fonttype none): small files.
"""

from __future__ import annotations

import io
from typing import Any
import re
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# text.parse_math off: every label here is a name from the store (suite, arm, task, profile), never
# mathtext; `nightly $\alpha_$` would otherwise be parsed as TeX and abort the whole report.
plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "eitp-bench", "font.size": 9,
                     "axes.spines.top": False, "axes.spines.right": False, "text.parse_math": False})

MAX_POINTS = 200  # per arm in strip plots: enough to see the spread, small enough for 10 000 runs
_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def to_svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")  # fixed margins, no bbox_inches="tight": one draw per figure
    plt.close(fig)
    text = buf.getvalue()
    svg = text[text.find("<svg"):]  # drop the XML prolog and DOCTYPE: inlined into HTML
    return re.sub(r"<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)  # RDF date/creator: noise


def distribution(samples: dict[str, np.ndarray], *, title: str, unit: str = "", seed: int = 0) -> str:
    """Box plot per arm with the individual repetitions as a jittered strip."""
    arms = list(samples)
    fig, ax = plt.subplots(figsize=(1.8 + 1.1 * len(arms), 2.8))
    fig.subplots_adjust(left=0.8 / (1.8 + 1.1 * len(arms)), right=0.97, bottom=0.12, top=0.84)  # fixed: no layout pass
    data = [np.asarray(samples[a], dtype=float) for a in arms]
    ax.boxplot(data, showfliers=False, widths=0.5)
    ax.set_xticks(range(1, len(arms) + 1), arms)
    rng = np.random.default_rng(seed)
    for i, values in enumerate(data, start=1):
        shown = values if len(values) <= MAX_POINTS else rng.choice(values, MAX_POINTS, replace=False)
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(shown)), shown, s=10, alpha=0.6,
                   color=_COLORS[(i - 1) % len(_COLORS)], zorder=3)
    ax.set_title(title, fontsize=8)
    ax.set_ylabel(unit)
    return to_svg(fig)


def timelines(series: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str) -> str:
    """Power against time, one line per (run, domain) label."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.17, top=0.9)
    for i, (label, (t, watts)) in enumerate(series.items()):
        ax.plot(t, watts, lw=1, label=label, color=_COLORS[i % len(_COLORS)])
    ax.set_xlabel("time since first window opened (s)")
    ax.set_ylabel("W")
    ax.set_title(title)
    if len(series) <= 8:
        ax.legend(fontsize=7, frameon=False)
    return to_svg(fig)


def energy_bars(table, *, title: str) -> str:
    """Stacked median joules per (arm, task, window) bar, one colour per device/domain."""
    pivot = table.pivot_table(index="group", columns="channel", values="joules", aggfunc="sum").fillna(0)
    label_in = 0.065 * max(len(str(g)) for g in pivot.index)  # ~width of the longest bar label at 9 pt
    width = 7 + label_in
    fig, ax = plt.subplots(figsize=(width, 1.0 + 0.35 * len(pivot)))
    fig.subplots_adjust(left=(label_in + 0.2) / width, right=0.98, bottom=0.6 / (1.0 + 0.35 * len(pivot)),
                        top=1 - 0.3 / (1.0 + 0.35 * len(pivot)))
    left = np.zeros(len(pivot))
    for i, channel in enumerate(pivot.columns):
        ax.barh(pivot.index, pivot[channel], left=left, label=channel, color=_COLORS[i % len(_COLORS)])
        left += pivot[channel].to_numpy()
    ax.set_xlabel("median joules per repetition (measured only)")
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return to_svg(fig)


def pareto(points, frontier, *, title: str) -> str:
    """Per-run (seconds, joules) scatter per arm, arm medians and the Pareto frontier of the medians."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    fig.subplots_adjust(left=0.13, right=0.98, bottom=0.14, top=0.91)
    for i, (arm, group) in enumerate(points.groupby("label", sort=True)):
        color = _COLORS[i % len(_COLORS)]
        shown = group if len(group) <= MAX_POINTS else group.sample(MAX_POINTS, random_state=0)
        ax.scatter(shown["seconds"], shown["joules"], s=9, alpha=0.4, color=color)
        ax.scatter([group["seconds"].median()], [group["joules"].median()], s=60, marker="D", color=color,
                   edgecolor="black", label=arm, zorder=4)
    if len(frontier) > 0:
        ax.plot(frontier["seconds"], frontier["joules"], "k--", lw=1, label="Pareto frontier (medians)")
    ax.set_xlabel("seconds per window")
    ax.set_ylabel("joules per window")
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False)
    return to_svg(fig)


def ladder_svg(rungs: list[dict[str, Any]]) -> str:
    """The rungs on one logarithmic joule axis, as an SVG string."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rungs) + 1.2))
    ys = range(len(rungs))
    colors = ["#1f77b4" if r.get("method") != "measured" else "#d62728" for r in rungs]
    ax.barh(list(ys), [r["joules"] for r in rungs], color=colors, left=[min(r["joules"] for r in rungs) / 10] * len(rungs))
    ax.set_xscale("log")
    lo, hi = min(r["joules"] for r in rungs), max(r["joules"] for r in rungs)
    ax.set_xlim(lo / 10, hi * 1e4)  # room for the ratio labels
    ax.set_yticks(list(ys), [f"{r['name']} (J/{r['per']})" for r in rungs], fontsize=8)
    for y, r in zip(ys, rungs):
        ax.text(r["joules"], y, f"  {r['ratio_to_landauer']:.2g}× E_L", va="center", fontsize=7)
    ax.set_xlabel("joules (log scale)")
    ax.set_title("Energy ladder (ratios to Landauer's bit)", fontsize=9)
    fig.tight_layout()
    return to_svg(fig)
