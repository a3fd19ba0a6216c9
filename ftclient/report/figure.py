"""report.png: score against inference cost, and latency, one point and one bar pair per option.
matplotlib is imported only when a figure is rendered."""

from __future__ import annotations

import io
import math
from typing import Any

from .format import finite_float
from .options import Report


def render_png(r: Report) -> bytes:
    """Two panels: score against cost per 1K queries (log x when the spread is wide), and
    latency p50/p95 per option."""
    fig = render_figure(r)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _place_labels(fig: Any, ax: Any, labels: list[Any], gap_px: float = 2.0) -> None:
    """Move the point labels of ``ax`` (annotations offset in points from their point) up or
    down, one at a time in the order given, until none overlaps a label placed before it: the
    nearest free place below wins, else the nearest above, inside the axes where it can be. A
    label that moved is drawn again there with a thin line to its point (a simple greedy
    placement; no extra dependency)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    ax_box = ax.get_window_extent(renderer)
    placed: list[Any] = []
    px_to_pt = 72.0 / fig.dpi
    for ann in labels:
        ann.update_positions(renderer)
        box = Text.get_window_extent(ann, renderer)  # the text alone, without any arrow
        step = box.height + gap_px
        dx, dy = ann.xyann
        best = None
        # labels come top-down: the nearest free place below keeps their order; above if none
        span = len(labels) + 1
        for shift in [0.0] + [-k * step for k in range(1, span)] + [k * step for k in range(1, span)]:
            cand = box.translated(0, shift)
            if any(cand.overlaps(b) for b in placed):
                continue
            inside = cand.y0 >= ax_box.y0 and cand.y1 <= ax_box.y1
            if inside or best is None:
                best = (shift, cand)
            if inside:
                break
        shift, cand = best  # type: ignore[misc]
        if shift:  # drawn again where it goes, with a line to its point
            ax.annotate(ann.get_text(), ann.xy, textcoords="offset points", xytext=(dx, dy + shift * px_to_pt),
                        ha=ann.get_ha(), fontsize=ann.get_fontsize(),
                        arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.6, "shrinkA": 0, "shrinkB": 3})
            ann.remove()
        placed.append(cand)


def render_figure(r: Report) -> Any:
    """The matplotlib Figure behind :func:`render_png` (Agg), labels placed apart."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    opts = r.options
    n = len(opts)
    winner = r.recommendation.get("recommended")
    fig = Figure(figsize=(11, 5.2 + 0.42 * n), dpi=110)
    ax1, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 0.9 + 0.32 * n]})
    color = {"hosted": "#4C72B0", "self-hosted": "#DD8452"}
    pts = [o for o in opts if o.cost_per_1k_usd is not None and o.score is not None]
    xs = [float(o.cost_per_1k_usd) for o in pts]  # type: ignore[arg-type]
    pos = [x for x in xs if x > 0]
    log = bool(pos) and len(pos) == len(xs) and max(pos) / min(pos) > 20
    best = r.recommendation.get("bar", {}).get("best_score")
    if best is not None:
        ax1.axhspan(best - r.tolerance, best, color="#55A868", alpha=0.15, zorder=0,
                    label=f"within {r.tolerance:g} of the best")
    if log:
        ax1.set_xscale("log")
        x_lo, x_hi = min(pos) / 3, max(pos) * 3
    else:
        x_lo, x_hi = 0.0, (max(xs) * 1.15 if xs and max(xs) > 0 else 1.0)
    ax1.set_xlim(x_lo, x_hi)

    def right_half(x: float) -> bool:
        if log:
            return math.log(x / x_lo) / math.log(x_hi / x_lo) > 0.55
        return (x - x_lo) / (x_hi - x_lo) > 0.55

    labels = []
    for o in pts:
        x = float(o.cost_per_1k_usd)  # type: ignore[arg-type]
        ax1.scatter(x, o.score, s=160 if o.name == winner else 70, color=color.get(o.kind, "grey"),
                    marker="*" if o.name == winner else ("o" if o.eligible else "x"), zorder=3)
        left = right_half(x)
        labels.append(ax1.annotate(o.name + (" (recommended)" if o.name == winner else ""), (x, o.score),
                                   textcoords="offset points", xytext=(-7 if left else 7, 5),
                                   ha="right" if left else "left", fontsize=8))
    scores = [float(o.score) for o in pts]  # type: ignore[arg-type]
    if scores:
        lo_y, hi_y = min(scores + ([best - r.tolerance] if best is not None else [])), max(scores)
        pad = max(0.02, (hi_y - lo_y) * 0.12)
        ax1.set_ylim(lo_y - pad, hi_y + pad)
    ax1.set_xlabel(f"inference cost per 1K queries at {r.queries_per_month:,} queries/month "
                   f"(USD{', log scale' if log else ''})")
    ax1.set_ylabel(f"score ({r.metric})")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=k) for k, c in color.items()
               if any(o.kind == k for o in pts)]
    if best is not None:
        from matplotlib.patches import Patch

        handles.append(Patch(color="#55A868", alpha=0.3, label=f"within {r.tolerance:g} of the best (tied)"))
    if handles:
        ax1.legend(handles=handles, fontsize=8, loc="best")
    missing = [o.name for o in opts if o not in pts]
    title = "score against inference cost"
    if missing:
        title += f" (not shown, no cost figure: {', '.join(missing)})"
    ax1.set_title(title, fontsize=9)
    ax1.grid(alpha=0.3)
    ys = list(range(n))[::-1]
    p50 = [finite_float(o.latency_s.get("p50")) or 0.0 for o in opts]
    p95 = [finite_float(o.latency_s.get("p95")) or 0.0 for o in opts]
    h = 0.38
    ax2.barh([y + h / 2 for y in ys], p50, height=h, color="#4C72B0", label="p50")
    ax2.barh([y - h / 2 for y in ys], p95, height=h, color="#C44E52", label="p95")
    ax2.set_yticks(ys)
    ax2.set_yticklabels([o.name for o in opts], fontsize=8)
    top = max(p50 + p95) if max(p50 + p95, default=0) > 0 else 1.0
    ax2.set_xlim(0, top * 1.2)
    for y, a, b in zip(ys, p50, p95):
        ax2.text(a + top * 0.01, y + h / 2, f"{a:.2f} s", va="center", fontsize=7)
        ax2.text(b + top * 0.01, y - h / 2, f"{b:.2f} s", va="center", fontsize=7)
    ax2.set_xlabel("latency per query, seconds, as the eval measured it")
    ax2.set_title("latency p50 / p95", fontsize=9)
    ax2.legend(fontsize=8, loc="lower right")
    ax2.grid(axis="x", alpha=0.3)
    title = (f"ftc compare: recommended at {r.queries_per_month:,} queries/month: "
             f"{r.recommendation.get('recommended') or 'none'}")
    if not r.comparable:
        title += "\nNOT COMPARABLE: the runs were not evaluated on the same examples"
    fig.suptitle(title, fontsize=11, color="black" if r.comparable else "#C44E52")
    fig.tight_layout()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # a renderer to measure the labels with
    # The winner's label first (it stays by its point), then from the top down.
    labels.sort(key=lambda a: (not a.get_text().endswith("(recommended)"), -a.xy[1], a.xy[0]))
    _place_labels(fig, ax1, labels)
    return fig
