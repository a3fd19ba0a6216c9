"""Charts of a cost comparison (matplotlib, Agg backend, imported only when used)."""

from __future__ import annotations

import io
import os
from typing import Any

from .fileio import atomic_writer


def plot_comparison(cmp: Any, path: str | os.PathLike) -> None:
    """Write a PNG: training cost and monthly inference cost per backend, side by side.

    Rendered in memory first, then written atomically: on any error no file appears.
    """
    png = render_comparison_png(cmp)
    with atomic_writer(path, "wb") as f:
        f.write(png)


def render_comparison_png(cmp: Any) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    rows = cmp.rows
    labels = [r.label for r in rows]
    known_train = [r.training_cost_usd is not None for r in rows]
    known_monthly = [r.inference_monthly_usd is not None for r in rows]
    train = [r.training_cost_usd or 0.0 for r in rows]
    monthly = [r.inference_monthly_usd or 0.0 for r in rows]
    colors = ["#4C72B0" if r.kind == "hosted" else "#DD8452" if r.kind == "self-hosted" else "#55A868" for r in rows]
    n = len(rows)
    fig = Figure(figsize=(13, 1.2 + 0.55 * n), dpi=110)
    axes = fig.subplots(1, 2, sharey=True)
    ys = list(range(n))[::-1]
    for ax, values, known, title in (
        (axes[0], train, known_train, f"Training cost (USD, {cmp.epochs} epoch{'' if cmp.epochs == 1 else 's'}, {cmp.examples:,} examples)"),
        (axes[1], monthly, known_monthly, f"Inference cost per month (USD, {cmp.queries_per_month:,} queries)"),
    ):
        ax.barh(ys, values, color=colors)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        top = max(values) if values and max(values) > 0 else 1.0
        ax.set_xlim(0, top * 1.3)
        for y, v, k in zip(ys, values, known):
            text = ("not estimated" if not k else f"${v:,.2f}" if v >= 1 or v == 0 else f"${v:.3f}")
            ax.text(v + top * 0.01, y, text, va="center", fontsize=8)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(labels, fontsize=8)
    if getattr(cmp, "budget_usd", None) is not None:
        axes[0].axvline(cmp.budget_usd, color="red", linestyle="--", linewidth=1)
        axes[0].text(cmp.budget_usd, n - 0.4, f" budget ${cmp.budget_usd:g}", color="red", fontsize=8)
    from matplotlib.patches import Patch

    axes[1].legend(
        handles=[Patch(color="#4C72B0", label="hosted API"), Patch(color="#DD8452", label="self-hosted (estimated)")]
        + ([Patch(color="#55A868", label="this machine (local)")] if any(r.kind == "local" for r in rows) else []),
        loc="upper right",
        fontsize=8,
    )
    fig.suptitle("ftc cost compare (offline estimate; see --json for each figure's basis)", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
