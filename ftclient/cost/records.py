"""The records of an estimate and of a comparison (each with its ``to_dict()``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .assumptions import Assumptions


def _round_usd(v: Any) -> Any:
    """A dollar figure to 4 decimals; None (unknown) stays None."""
    return round(v, 4) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


@dataclass
class CostEstimate:
    """The training cost of one job: what every backend's ``estimate(spec)`` returns.

    ``cost_usd`` is the figure a budget is held to; None when it is unknown (e.g. a local run
    with a price per hour but no measured time, or a model the catalogue cannot price).
    ``cost_basis`` says how it was made, ``caveats`` what to keep in mind.
    """

    model: str
    provider: str
    kind: str  # hosted | self-hosted
    method: str
    adapter: str
    examples: int
    tokens_per_epoch: int
    epochs: int
    epochs_basis: str
    billed_tokens: int
    cost_usd: float | None
    cost_before_minimum_usd: float | None
    min_charge_usd: float
    min_charge_applied: bool
    token_count_basis: str
    token_count_exact: bool
    cost_exact: bool
    cost_basis: str
    price: dict[str, Any]
    examples_over_limit: int = 0
    max_example_tokens: int | None = None
    caveats: list[str] = field(default_factory=list)
    self_hosted: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost_usd"] = _round_usd(self.cost_usd)
        d["cost_before_minimum_usd"] = _round_usd(self.cost_before_minimum_usd)
        if d["self_hosted"] is None:
            del d["self_hosted"]
        return d


@dataclass
class LocalCostEstimate(CostEstimate):
    """A local run's estimate: tokens and steps from the data, time from a calibration (or unknown);
    ``calibration`` holds the calibration it was predicted from (``created_at``, ``key``, ...)."""

    duration_s: float | None = None
    time_basis: str = ""
    optimizer_steps: int | None = None
    steps_basis: str = ""
    rows: int | None = None
    batch_size: int | None = None
    device: str | None = None
    calibration: dict[str, Any] | None = None


@dataclass
class CompareRow:
    backend: str  # what the user passed (model or GPU offer)
    label: str
    kind: str  # hosted | self-hosted (a catalogue GPU offer) | local (this machine)
    model: str
    method: str
    adapter: str
    epochs: int
    billed_tokens: int
    training_cost_usd: float | None  # None: unknown (a local row with a price but no measured time)
    training_basis: str
    training_exact: bool
    min_charge_applied: bool
    duration_hours: float | None
    inference_per_1k_usd: float | None
    inference_monthly_usd: float | None
    inference_basis: str
    inference_exact: bool
    serving: str
    break_even_queries_per_month: float | str | None
    break_even_basis: str | None
    within_budget: bool | None
    token_count_basis: str
    token_count_exact: bool
    price: dict[str, Any]
    caveats: list[str] = field(default_factory=list)
    gpu_hours: float | None = None
    training_flops: float | None = None
    utilisation: float | None = None
    usd_per_gpu_hour: float | None = None
    # internal, for break-even: cost per query (linear part) and fixed monthly cost
    _per_query_usd: float | None = field(default=None, repr=False)
    _fixed_monthly_usd: float | None = field(default=None, repr=False)
    _queries_per_gpu_month: float | None = field(default=None, repr=False)
    _monthly_fn: Any = field(default=None, repr=False, compare=False)  # monthly cost at a volume, if not linear

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        for k in ("training_cost_usd", "inference_per_1k_usd", "inference_monthly_usd", "duration_hours", "gpu_hours"):
            if isinstance(d.get(k), float):
                d[k] = round(d[k], 4)
        if isinstance(d.get("break_even_queries_per_month"), float):
            d["break_even_queries_per_month"] = round(d["break_even_queries_per_month"])
        return d


@dataclass
class CostComparison:
    rows: list[CompareRow]
    examples: int
    epochs: int
    epochs_basis: str
    queries_per_month: int
    tokens_per_query: dict[str, Any]
    budget_usd: float | None
    self_host_model: str
    assumptions: Assumptions
    catalogue_files: list[str]
    self_host: dict[str, Any] = field(default_factory=dict)  # the self-hosted rows' model: size and its basis
    # default backends left out, each {"backend", "reason"} (e.g. those that cannot take a Parquet file)
    not_compared: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "epochs": self.epochs,
            "epochs_basis": self.epochs_basis,
            "queries_per_month": self.queries_per_month,
            "tokens_per_query": self.tokens_per_query,
            "budget_usd": self.budget_usd,
            "self_host_model": self.self_host_model,
            "self_host": self.self_host,
            "assumptions": self.assumptions.to_dict(),
            "price_files": self.catalogue_files,
            "rows": [r.to_dict() for r in self.rows],
            "not_compared": self.not_compared,
        }

