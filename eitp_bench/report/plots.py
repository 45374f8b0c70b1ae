"""Matplotlib figures rendered to inline SVG markup (no external files).

Every function returns an `<svg>…</svg>` string we generated ourselves, so the
template may inline it unescaped. Text stays text (svg.fonttype none): small files.
Figures are made with `matplotlib.figure.Figure` directly, not through pyplot: no global figure registry
to close after each, no interactive backend to pick, and pyplot's import is spared (`subplots` below).
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

# A named backend, not "auto": reading rcParams["backend"] while it is auto (boxplot reads every rcParam)
# imports pyplot to resolve it. Agg draws without a display; the SVG itself comes from the svg backend.
matplotlib.use("Agg")

# Mathtext stays on (log axes write their ticks as mathtext: 10⁻³); every label that comes from the
# store (suite, arm, task, profile, device names) goes through `escape`, so `nightly $\alpha_$` is text.
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "eitp-bench", "font.size": 9,
                            "axes.spines.top": False, "axes.spines.right": False})

MAX_POINTS = 200  # per arm in strip plots: enough to see the spread, small enough for 10 000 runs
_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def escape(text: object) -> str:
    """User-supplied text as literal text: a `$` would start mathtext (and a lone one aborts the draw)."""
    return str(text).replace("$", r"\$")  # outside $…$ a backslash is literal: only `$` needs escaping


def legend_outside(ax, **kwargs) -> None:
    """The legend to the right of the axes, never over the data."""
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kwargs)


def subplots(figsize: tuple[float, float]):
    """A figure with one axes, as pyplot.subplots(figsize=…) makes it, but owned by the caller alone."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def to_svg(fig) -> str:
    buf = io.StringIO()
    # bbox_inches="tight": the saved canvas grows to hold every title, tick label and outside legend.
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.08)
    text = buf.getvalue()
    svg = text[text.find("<svg"):]  # drop the XML prolog and DOCTYPE: inlined into HTML
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)  # RDF date/creator: noise
    # matplotlib comments each text with its source (`<!-- $\mathdefault{10^{-3}}$ -->`): drawn already, noise
    return re.sub(r"<!--.*?-->", "", svg, flags=re.S)


def distribution(samples: dict[str, np.ndarray], *, title: str, unit: str = "", seed: int = 0) -> str:
    """Box plot per arm with the individual repetitions as a jittered strip."""
    arms = list(samples)
    fig, ax = subplots(figsize=(1.8 + 1.1 * len(arms), 2.8))
    data = [np.asarray(samples[a], dtype=float) for a in arms]
    ax.boxplot(data, showfliers=False, widths=0.5)
    ax.set_xticks(range(1, len(arms) + 1), [escape(a) for a in arms])
    rng = np.random.default_rng(seed)
    for i, values in enumerate(data, start=1):
        shown = values if len(values) <= MAX_POINTS else rng.choice(values, MAX_POINTS, replace=False)
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(shown)), shown, s=10, alpha=0.6,
                   color=_COLORS[(i - 1) % len(_COLORS)], zorder=3)
    ax.set_title(escape(title), fontsize=8)
    ax.set_ylabel(escape(unit))
    return to_svg(fig)


def timelines(series: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str) -> str:
    """Power against time, one line per (run, domain) label."""
    fig, ax = subplots(figsize=(7, 2.6))
    for i, (label, (t, watts)) in enumerate(series.items()):
        ax.plot(t, watts, lw=1, label=escape(label), color=_COLORS[i % len(_COLORS)])
    ax.set_xlabel("time since first window opened (s)")
    ax.set_ylabel("W")
    ax.set_title(escape(title))
    if len(series) <= 8:
        legend_outside(ax)
    return to_svg(fig)


def energy_bars(table, *, title: str) -> str:
    """Stacked median joules per (arm, task, window) bar, one colour per device/domain."""
    pivot = table.pivot_table(index="group", columns="channel", values="joules", aggfunc="sum").fillna(0)
    fig, ax = subplots(figsize=(7, 1.0 + 0.35 * len(pivot)))
    left = np.zeros(len(pivot))
    labels = [escape(g) for g in pivot.index]
    for i, channel in enumerate(pivot.columns):
        ax.barh(labels, pivot[channel], left=left, label=escape(channel), color=_COLORS[i % len(_COLORS)])
        left += pivot[channel].to_numpy()
    ax.set_xlabel("median joules per repetition (measured only)")
    ax.set_title(escape(title))
    legend_outside(ax)
    return to_svg(fig)


def arm_energy(bars: list[dict], *, title: str, xlabel: str) -> str:
    """One stacked bar per arm (segments: device and domain, medians over repetitions) with the 95 %
    interval of the median total as a whisker. bars: [{arm, parts: {channel: J}, total, low, high, n}]."""
    channels = list(dict.fromkeys(c for b in bars for c in b["parts"]))
    fig, ax = subplots(figsize=(6.5, 0.9 + 0.45 * len(bars)))
    ys = np.arange(len(bars))
    left = np.zeros(len(bars))
    for i, channel in enumerate(channels):
        widths = np.array([b["parts"].get(channel, 0.0) for b in bars])
        ax.barh(ys, widths, left=left, height=0.6, label=escape(channel), color=_COLORS[i % len(_COLORS)])
        left += widths
    totals = np.array([b["total"] for b in bars])
    err = np.array([[max(0.0, b["total"] - b["low"]) for b in bars], [max(0.0, b["high"] - b["total"]) for b in bars]])
    ax.errorbar(totals, ys, xerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_yticks(ys, [f"{escape(b['arm'])} (n={b['n']})" for b in bars])
    ax.invert_yaxis()
    ax.set_xlabel(escape(xlabel))
    ax.set_title(escape(title), fontsize=9)
    legend_outside(ax)
    return to_svg(fig)


def loss_curves(curves: dict[str, dict], *, x: str, xlabel: str, title: str) -> str:
    """Validation loss per arm against `x` ("step" or "joules"): each repetition faint, the median bold.
    curves: {arm: {"runs": [(xs, losses)], "median": (xs, losses)}}."""
    fig, ax = subplots(figsize=(6, 3.0))
    for i, (arm, c) in enumerate(curves.items()):
        color = _COLORS[i % len(_COLORS)]
        for xs, ys in c["runs"][:MAX_POINTS]:
            ax.plot(xs, ys, lw=0.6, alpha=0.25, color=color)
        xs, ys = c["median"]
        ax.plot(xs, ys, lw=2, marker="o", ms=3, color=color, label=escape(arm))
    ax.set_xlabel(escape(xlabel))
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(escape(title), fontsize=9)
    legend_outside(ax)
    return to_svg(fig)


def pareto(points, frontier, *, title: str) -> str:
    """Per-run (seconds, joules) scatter per arm, arm medians and the Pareto frontier of the medians."""
    fig, ax = subplots(figsize=(6, 3.4))
    for i, (arm, group) in enumerate(points.groupby("label", sort=True)):
        color = _COLORS[i % len(_COLORS)]
        shown = group if len(group) <= MAX_POINTS else group.sample(MAX_POINTS, random_state=0)
        ax.scatter(shown["seconds"], shown["joules"], s=9, alpha=0.4, color=color)
        ax.scatter([group["seconds"].median()], [group["joules"].median()], s=60, marker="D", color=color,
                   edgecolor="black", label=escape(arm), zorder=4)
    if len(frontier) > 0:
        ax.plot(frontier["seconds"], frontier["joules"], "k--", lw=1, label="Pareto frontier (medians)")
    ax.set_xlabel("seconds per window")
    ax.set_ylabel("joules per window")
    ax.set_title(escape(title))
    legend_outside(ax)
    return to_svg(fig)


def ladder_svg(rungs: list[dict[str, Any]]) -> str:
    """The rungs on one logarithmic joule axis, as an SVG string."""
    fig, ax = subplots(figsize=(7, 0.45 * len(rungs) + 1.2))
    ys = range(len(rungs))
    colors = ["#1f77b4" if r.get("method") != "measured" else "#d62728" for r in rungs]
    ax.barh(list(ys), [r["joules"] for r in rungs], color=colors, left=[min(r["joules"] for r in rungs) / 10] * len(rungs))
    ax.set_xscale("log")
    lo, hi = min(r["joules"] for r in rungs), max(r["joules"] for r in rungs)
    ax.set_xlim(lo / 10, hi * 1e4)  # room for the ratio labels
    ax.set_yticks(list(ys), [escape(f"{r['name']} (J/{r['per']})") for r in rungs], fontsize=8)
    for y, r in zip(ys, rungs):
        ax.text(r["joules"], y, f"  {r['ratio_to_landauer']:.2g}× E_L", va="center", fontsize=7)
    ax.set_xlabel("joules (log scale)")
    ax.set_title("Energy ladder (ratios to Landauer's bit)", fontsize=9)
    return to_svg(fig)
