"""The report's figures, each drawn with matplotlib and returned as PNG bytes.

Every function builds its own :class:`matplotlib.figure.Figure` on the Agg canvas rather
than going through ``pyplot``: no global figure state, no display backend, safe when
several reports are drawn in one process. A function draws only numbers it is given —
estimates and intervals, standardized differences, histogram counts, replicate effects,
a sensitivity grid — and never fills in data the results do not hold.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TREATED_COLOUR = "#d9822b"
CONTROL_COLOUR = "#2b6cb0"
FAIL_COLOUR = "#c53030"
MUTED = "#718096"
SMD_THRESHOLD = 0.1  # the rule of thumb for residual imbalance (Austin 2009; Stuart 2010)


def new_figure(width: float, height: float) -> Figure:
    """A figure on the non-interactive Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the PNG carries no software or date metadata, so the same
    figure gives the same bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None}, facecolor="white")
    return buffer.getvalue()


# ---------------------------------------------------------------- estimates
def forest_plot(rows: Sequence[Mapping], title: str) -> bytes:
    """Estimates with their intervals, one line per row; ``rows`` are dicts with ``label``,
    ``group`` (rows of one group are drawn together under its name), ``estimate``,
    ``ci_low`` and ``ci_high`` (None: the point alone)."""
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    ticks, labels, bold = [], [], []
    y = 0.0
    points = []
    for group, members in groups.items():
        if len(groups) > 1:
            ticks.append(y), labels.append(group), bold.append(True)
            y -= 1
        for row in members:
            ticks.append(y), labels.append(row["label"]), bold.append(False)
            points.append((y, row))
            y -= 1
    fig = new_figure(7.5, 0.9 + 0.32 * len(ticks))
    ax = fig.add_subplot()
    for y_row, row in points:
        low, high = row.get("ci_low"), row.get("ci_high")
        if low is not None and high is not None:
            ax.plot([low, high], [y_row, y_row], color=CONTROL_COLOUR, linewidth=2, solid_capstyle="butt")
        ax.plot([row["estimate"]], [y_row], "o", color=TREATED_COLOUR, markersize=6, zorder=3)
    ax.axvline(0.0, color=MUTED, linewidth=0.8, linestyle=":")
    ax.set_yticks(ticks, labels)
    for label, strong in zip(ax.get_yticklabels(), bold):
        label.set_fontweight("bold" if strong else "normal")
    ax.set_ylim(y + 0.5, 0.5)
    ax.set_xlabel("effect (point and interval)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig)


def love_plot(before: Mapping[str, float], after: Mapping[str, float], title: str) -> bytes:
    """Absolute standardized mean differences per covariate before and after weighting
    (a "Love plot", Ahmed et al. 2006), with the 0.1 threshold."""
    names = sorted(before, key=lambda c: abs(before[c] if before[c] is not None else 0.0))
    fig = new_figure(6.0, 1.0 + 0.3 * len(names))
    ax = fig.add_subplot()
    ys = np.arange(len(names))
    ax.plot([abs(before[c]) if before[c] is not None else np.nan for c in names], ys, "o", mfc="none",
            color=MUTED, label="before weighting")
    ax.plot([abs(after[c]) if after.get(c) is not None else np.nan for c in names], ys, "o",
            color=TREATED_COLOUR, label="after weighting")
    ax.axvline(SMD_THRESHOLD, color=FAIL_COLOUR, linestyle="--", linewidth=0.8, label=f"{SMD_THRESHOLD:g}")
    ax.set_yticks(ys, names)
    ax.set_xlim(left=0)
    ax.set_xlabel("|standardized mean difference|")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig)


def overlap_plot(histogram: Mapping, bounds: Sequence[float] | None, title: str) -> bytes:
    """The arms' propensity distributions mirrored about zero (treated above, control
    below) from band counts: ``edges`` and the rows per band of ``treated`` and ``control``.
    Bands differ in width, so a bar's height is the arm's share per unit of propensity."""
    edges = np.asarray(histogram["edges"], dtype=float)
    widths = np.diff(edges)
    fig = new_figure(6.5, 3.0)
    ax = fig.add_subplot()
    for arm, sign, colour in (("treated", 1.0, TREATED_COLOUR), ("control", -1.0, CONTROL_COLOUR)):
        counts = np.asarray(histogram[arm], dtype=float)
        total = counts.sum()
        density = counts / (total * widths) if total > 0 else counts
        ax.bar(edges[:-1], sign * density, width=widths, align="edge", color=colour, alpha=0.75,
               edgecolor="white", linewidth=0.5, label=f"{arm} ({int(total)} rows)")
    for b in bounds or ():
        ax.axvline(b, color=FAIL_COLOUR, linestyle="--", linewidth=0.8)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlim(0, 1)
    ax.set_xlabel("estimated propensity")
    ax.set_ylabel("share per unit (control mirrored)")
    ax.yaxis.set_major_formatter(lambda v, _: f"{abs(v):g}")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8)
    return to_png(fig)


def normal_curves(rows: Sequence[Mapping], title: str) -> bytes:
    """Normal densities ``N(estimate, se²)`` per row (``label``, ``estimate``, ``se``):
    the sampling distributions the bootstrap standard errors imply."""
    fig = new_figure(6.5, 2.8)
    ax = fig.add_subplot()
    lows = [r["estimate"] - 4 * r["se"] for r in rows]
    highs = [r["estimate"] + 4 * r["se"] for r in rows]
    x = np.linspace(min(lows), max(highs), 400)
    for row in rows:
        z = (x - row["estimate"]) / row["se"]
        ax.plot(x, np.exp(-0.5 * z * z) / (row["se"] * math.sqrt(2 * math.pi)), label=row["label"])
    ax.set_xlabel("effect")
    ax.set_yticks([])
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8)
    return to_png(fig)


# ---------------------------------------------------------------- refutations
def effects_histogram(effects: Sequence[float], estimate: float | None, tested: float | None, title: str) -> bytes:
    """A small histogram of a simulation refuter's effects, with the study's estimate and
    the value the refuter tests against marked."""
    values = np.asarray([e for e in effects if e is not None and math.isfinite(e)], dtype=float)
    fig = new_figure(3.4, 2.2)
    ax = fig.add_subplot()
    ax.hist(values, bins=min(30, max(5, len(values) // 5)), color=MUTED, alpha=0.8)
    if estimate is not None:
        ax.axvline(estimate, color=TREATED_COLOUR, linewidth=1.5, label="estimate")
    if tested is not None and tested != estimate:
        ax.axvline(tested, color=CONTROL_COLOUR, linewidth=1.2, linestyle="--", label="tested value")
    ax.set_title(title, fontsize=8, loc="left")
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    return to_png(fig, dpi=100)


def sensitivity_contour(r2dz_x: Sequence[float], r2yz_dx: Sequence[float], estimate: Sequence[Sequence[float]],
                        unadjusted: float, marks: Sequence[Mapping], title: str) -> bytes:
    """Contours of the adjusted estimate over the confounder's partial R² with the
    treatment (x) and the outcome (y), ``estimate[i][j]`` at ``(r2dz_x[i], r2yz_dx[j])``
    (Cinelli & Hazlett 2020, sec. 4.2, figure 2); the zero contour is red, and ``marks``
    (``label``, ``r2dz_x``, ``r2yz_dx``, ``estimate``) are drawn as points, the benchmark
    bounds."""
    x, y = np.asarray(r2dz_x, dtype=float), np.asarray(r2yz_dx, dtype=float)
    z = np.asarray(estimate, dtype=float).T  # contour wants z[y, x]
    fig = new_figure(5.6, 4.6)
    ax = fig.add_subplot()
    if len(x) > 1 and len(y) > 1:
        levels = ax.contour(x, y, z, levels=10, colors=MUTED, linewidths=0.8)
        ax.clabel(levels, fontsize=7, fmt=lambda v: f"{v:.3g}")
        if np.nanmin(z) < 0 < np.nanmax(z):
            ax.contour(x, y, z, levels=[0.0], colors=FAIL_COLOUR, linewidths=1.6, linestyles="--")
    else:
        ax.scatter(np.repeat(x, len(y)), np.tile(y, len(x)), c=z.T.ravel(), cmap="viridis")
    ax.plot([0], [0], "^", color="black")
    ax.annotate(f"unadjusted {unadjusted:.3g}", (0, 0), textcoords="offset points", xytext=(6, 4), fontsize=8)
    for mark in marks:
        right = mark["r2dz_x"] > 0.7 * x.max()  # label on the left near the right edge, so it stays inside
        ax.plot([mark["r2dz_x"]], [mark["r2yz_dx"]], "D", color=FAIL_COLOUR, markersize=5, clip_on=False)
        ax.annotate(f"{mark['label']} ({mark['estimate']:.3g})", (mark["r2dz_x"], mark["r2yz_dx"]),
                    textcoords="offset points", xytext=(-6 if right else 6, -12), fontsize=8, color=FAIL_COLOUR,
                    ha="right" if right else "left")
    ax.set_xlabel("partial R² of the confounder with the treatment")
    ax.set_ylabel("partial R² of the confounder with the outcome")
    ax.set_title(title, fontsize=10, loc="left")
    return to_png(fig)


# ---------------------------------------------------------------- history
def history_plot(frame, title: str) -> bytes:
    """An estimate over past intervals: one line per ``series`` of ``frame`` (columns
    ``interval_end``, ``series``, ``estimate``, ``ci_low``, ``ci_high``), its interval
    shaded."""
    dates = pd.to_datetime(frame["interval_end"], errors="coerce")
    # dates where every interval end is one, so series with different intervals share an axis
    x_all = dates if dates.notna().all() else frame["interval_end"].astype(str)
    fig = new_figure(7.0, 3.0)
    ax = fig.add_subplot()
    for name, part in frame.assign(_x=x_all).groupby("series", sort=True):
        part = part.sort_values("_x")
        x = part["_x"].tolist()
        line, = ax.plot(x, part["estimate"], "o-", label=str(name), markersize=4)
        low, high = part["ci_low"].astype(float), part["ci_high"].astype(float)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15)
    ax.axhline(0.0, color=MUTED, linewidth=0.8, linestyle=":")
    ax.set_xlabel("interval end")
    ax.set_ylabel("estimate")
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8)
    return to_png(fig)
