"""Budgets and the figures compared with them.

A budget is a finite number of USD, 0 or more. A cost figure (ftc's estimate, a provider's
quote) that is NaN, infinite or negative is not a price: against a budget it never counts as
within it.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import UsageError


def usable_usd(value: Any) -> bool:
    """Whether ``value`` is a real price: a finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:  # an int too large for a float
        return False


def check_budget(value: Any, where: str = "the budget") -> float | None:
    """``value`` as a budget (None stays None); a UsageError (exit 2) for anything that is
    not a finite number of USD >= 0."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise UsageError(f"{where}: {value!r} is not a number of USD",
                             hint="Give a finite number of USD, 0 or more, e.g. 20.") from None
    if not usable_usd(value):
        raise UsageError(f"{where}: {value!r} is not a usable budget",
                         hint="Give a finite number of USD, 0 or more, e.g. 20.")
    return float(value)


def within_budget(cost: Any, budget: float | None) -> bool | None:
    """None without a budget or without a figure; False for a figure that is not a real
    price (NaN, infinite, negative) -- it can never pass a budget; else ``cost <= budget``."""
    if budget is None or cost is None:
        return None
    if not usable_usd(cost) or not usable_usd(budget):
        return False
    return float(cost) <= float(budget)


def format_usd(value: float | None, none: str = "-") -> str:
    """An amount for people: ``$1,234.50``, or to 1/100 cent below a dollar (``$0.0123``)."""
    if value is None:
        return none
    v = float(value)
    return f"${v:,.2f}" if abs(v) >= 0.995 or v == 0 else f"${v:.4f}"
