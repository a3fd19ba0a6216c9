"""Break-even: the monthly query volume above which a self-hosted row's inference costs less
than the cheapest per-token hosted option, or "never"; and the GPU-hours a scale-to-zero GPU bills."""

from __future__ import annotations

import math

from ..prices import HOURS_PER_MONTH
from .assumptions import ASSUMPTIONS, Assumptions
from .records import CompareRow


def serverless_gpu_hours(queries_per_month: float, busy_s_per_query: float, a: Assumptions = ASSUMPTIONS) -> float:
    """GPU-hours a month billed by a per-second GPU that scales to zero.

    Queries arrive at random (Poisson) at rate r per second. A container is up while
    a request arrived within the last W seconds (W, the scale-down window): a fraction
    1 - exp(-r W) of the month. A request that finds no container starts one (a
    fraction exp(-r W) of requests), billing the cold start; one container is up at
    most the whole month. At least the busy time is billed, which takes over once one
    container is not enough.
    """
    if queries_per_month <= 0:
        return 0.0
    month_s = HOURS_PER_MONTH * 3600.0
    rate = queries_per_month / month_s
    w = a.serverless_scaledown_s
    up_fraction = -math.expm1(-rate * w)
    cold_starts = queries_per_month * math.exp(-rate * w)
    busy_h = queries_per_month * busy_s_per_query / 3600.0
    idle_model_h = min(HOURS_PER_MONTH, HOURS_PER_MONTH * up_fraction + cold_starts * a.serverless_cold_start_s / 3600.0)
    return max(busy_h, idle_model_h)


def break_even_volume(
    hosted_per_query: float, self_per_query: float, self_fixed_monthly: float, queries_per_gpu_month: float | None
) -> float | str:
    """Monthly queries above which self-hosting costs less than a per-token hosted option.

    Serverless self-hosting (no fixed cost): 0 if its cost per query is lower, else
    "never". An always-on instance costing F a month that serves up to C queries:
    F / hosted_per_query, if that falls within one GPU's capacity (i.e. the hosted
    price per query is above F / C); else "never" (more GPUs only add cost at the
    same rate per query).
    """
    if queries_per_gpu_month is None:  # serverless, billed for busy time only: linear vs linear
        return 0.0 if self_per_query < hosted_per_query else "never"
    if hosted_per_query <= 0:
        return "never"
    q = self_fixed_monthly / hosted_per_query
    return q if q <= queries_per_gpu_month else "never"


def break_even_monthly(hosted_per_query: float, monthly_cost, max_queries: float = 1e13) -> float | str:
    """Smallest monthly volume at which ``monthly_cost(q)`` drops below ``q x hosted_per_query``.

    For costs whose price per query does not rise with volume (scale-to-zero GPUs:
    idle windows first, then busy time), the two cross at most once: bisection on a
    log scale. "never" when self-hosting is dearer even at ``max_queries``.
    """
    if hosted_per_query <= 0:
        return "never"

    def cheaper(v: float) -> bool:
        return monthly_cost(v) < v * hosted_per_query

    if not cheaper(max_queries):
        return "never"
    lo, hi = 1.0, max_queries
    if cheaper(lo):
        return 0.0
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if cheaper(mid) else (mid, hi)
    return hi


def break_even(rows: list[CompareRow], q: int) -> None:
    """Each self-hosted row's break-even volume, against the cheapest per-token hosted row (in place)."""
    hosted = [r for r in rows if r.kind == "hosted" and r._per_query_usd is not None]
    if not hosted:
        for r in rows:
            if r.kind == "self-hosted":
                r.break_even_basis = "no per-token hosted option in the comparison"
        return
    best = min(hosted, key=lambda r: (r._per_query_usd or 0.0))
    for r in rows:
        if r.kind != "self-hosted":
            continue
        if r._monthly_fn is not None:
            be = break_even_monthly(best._per_query_usd or 0.0, r._monthly_fn)
        else:
            be = break_even_volume(best._per_query_usd or 0.0, r._per_query_usd or 0.0, r._fixed_monthly_usd or 0.0,
                                   r._queries_per_gpu_month)
        r.break_even_queries_per_month = be
        r.break_even_basis = f"vs {best.label} (${(best._per_query_usd or 0) * 1000:.4f} per 1K queries)"
