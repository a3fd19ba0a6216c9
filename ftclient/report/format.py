"""The report's shared formatters: the numbers report.json holds (finite floats, rounded) and
the text report.md and ``ftc compare`` show (cost per 1K queries, shares, durations, latencies,
a score's confidence interval). Money is :func:`ftclient.budget.format_usd`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .options import Option


def finite_float(v: Any) -> float | None:
    """``v`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def round_or_none(v: float | None, n: int) -> float | None:
    """``v`` rounded to ``n`` places, None staying None (the figures of report.json)."""
    return None if v is None else round(float(v), n)


def per_1k_text(v: float | None) -> str:
    """A cost per 1K queries, always to 1/100 cent, so that per 1K x volume / 1000 = per month as shown."""
    return "-" if v is None else f"${v:,.4f}"


def pct_text(x: float) -> str:
    """A share as a percentage with two significant digits below 10% (0.0020%, 0.35%, 3.5%, 42.0%)."""
    p = float(x) * 100
    if p <= 0:
        return "0%"
    if p >= 10:
        return f"{p:.1f}%"
    return f"{p:.{max(1, 1 - math.floor(math.log10(p)))}f}%"


def duration_text(s: float | None) -> str:
    """A training time, coarse: ``42 s``, ``17 min``, ``2.5 h``; ``-`` for None (the CLI's
    :func:`ftclient.cli.output.duration` writes times to the second, ``7m 05s``)."""
    if s is None:
        return "-"
    s = float(s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def ms_text(v: Any) -> str:
    """A latency in seconds as ``420 ms``, or ``12.3 s`` from 10 s; ``-`` when not a number."""
    f = finite_float(v)
    return "-" if f is None else (f"{f * 1000:.0f} ms" if f < 10 else f"{f:.1f} s")


def ci_text(o: Option) -> str | None:
    """``48 examples: 89.6% (95% CI 77.8-95.5%)`` for a share-of-examples score, else None."""
    if o.score_ci95 is None or o.score is None or not o.score_n:
        return None
    lo, hi = o.score_ci95
    return f"{o.score_n} examples: {o.score * 100:.1f}% (95% CI {lo * 100:.1f}-{hi * 100:.1f}%)"
