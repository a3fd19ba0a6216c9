"""Click parameter types shared by several commands."""

from __future__ import annotations

import click


class UsdType(click.ParamType):
    """An amount in USD: a finite number >= 0 (> 0 with ``positive``). ``nan``, ``inf`` and
    negatives are refused (exit 2) before anything else runs."""

    name = "usd"

    def __init__(self, what: str, *, positive: bool = False):
        self.what, self.positive = what, positive

    def convert(self, value, param, ctx):
        from ..budget import usable_usd

        if isinstance(value, (int, float)) and not isinstance(value, bool):
            v = float(value)
        else:
            try:
                v = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of USD (e.g. 20 or 12.50)", param, ctx)
        if not usable_usd(v) or (self.positive and v == 0):
            more = "more than 0" if self.positive else "0 or more"
            self.fail(f"{value!r} is not a usable {self.what}: give a finite number of USD, {more}", param, ctx)
        return v


BUDGET = UsdType("budget")
PRICE = UsdType("price")
POSITIVE_PRICE = UsdType("price", positive=True)


#: ``--prices FILE`` (also $FTC_PRICES): a YAML prices file merged over the bundled catalogue.
prices_option = click.option(
    "--prices", "prices_file", type=click.Path(dir_okay=False), envvar="FTC_PRICES", default=None,
    help="A YAML prices file merged over the bundled catalogue (also $FTC_PRICES).")
