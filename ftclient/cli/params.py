"""Click parameter types shared by several commands."""

from __future__ import annotations

import click


class BudgetType(click.ParamType):
    """A budget in USD: a finite number >= 0. ``nan``, ``inf`` and negatives are refused
    (exit 2) before anything else runs."""

    name = "usd"

    def convert(self, value, param, ctx):
        from ..budget import usable_usd

        if isinstance(value, (int, float)) and not isinstance(value, bool):
            v = float(value)
        else:
            try:
                v = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of USD (e.g. 20 or 12.50)", param, ctx)
        if not usable_usd(v):
            self.fail(f"{value!r} is not a usable budget: give a finite number of USD, 0 or more", param, ctx)
        return v


BUDGET = BudgetType()
