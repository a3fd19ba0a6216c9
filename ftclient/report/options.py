"""The records of a comparison: an :class:`Option` for each eval run, priced at the report's
volume, and the :class:`Report` that holds them with the recommendation; the names of the files
a report is written to."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..backends import offers
from .format import round_or_none

if TYPE_CHECKING:
    from .plans import Plan


def is_hosted(backend: str) -> bool:
    """Whether a provider's API serves ``backend``'s models (it hands an async chat client); the
    others (a backend that runs them here, an OpenAI-compatible server) are self-hosted."""
    return offers(backend, "async_chat_client")


def runs_here(backend: str) -> bool:
    """Whether ``backend``'s models run on this machine (it loads them: ``load_generator``)."""
    return offers(backend, "load_generator")

#: The files a report is written to (:func:`ftclient.report.write_report`).
REPORT_MD, REPORT_JSON, REPORT_PNG = "report.md", "report.json", "report.png"


@dataclass
class Option:
    """One eval run, priced at the report's volume."""

    name: str
    run_id: str
    model_ref: str
    backend: str
    model: str
    kind: str  # hosted | self-hosted
    fine_tuned: bool
    base_model: str | None
    job_id: str | None
    data: str
    data_sha256: str
    examples: int
    completed: int
    failed: int
    metric: str
    score: float | None
    metrics: dict[str, Any]
    latency_s: dict[str, Any]
    tokens: dict[str, Any]
    throughput_qps: float | None
    eval_cost_per_1k_usd: float | None
    eval_cost_basis: str
    serving: str = "unknown"
    cost_per_1k_usd: float | None = None  # at the report's volume
    monthly_usd: float | None = None  # at the report's volume
    cost_basis: str = ""
    catalogue_model: str | None = None
    training_cost_usd: float | None = None
    training_cost_basis: str | None = None
    training_time_s: float | None = None
    training_time_basis: str | None = None
    job_state: str | None = None
    eligible: bool = True
    caveats: list[dict[str, str]] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)  # where the eval measured latency and throughput
    not_compared: list[dict[str, Any]] = field(default_factory=list)  # serving ways not priced, and why
    score_n: int | None = None  # examples the score rests on
    score_ci95: tuple[float, float] | None = None  # Wilson interval of a share-of-examples score
    # the cost model: monthly cost at a volume
    _per_query: float | None = field(default=None, repr=False)  # linear part (per token or busy time)
    _fixed_monthly: float | None = field(default=None, repr=False)  # per GPU / endpoint
    _capacity: float | None = field(default=None, repr=False)  # queries per GPU-month (hourly GPU)
    _monthly_fn: Callable[[float], float] | None = field(default=None, repr=False, compare=False)
    _plans: list["Plan"] = field(default_factory=list, repr=False, compare=False)  # self-hosted serving ways
    _q: int = field(default=0, repr=False)  # the report's volume

    @property
    def has_cost(self) -> bool:
        return self._monthly_fn is not None

    def monthly_cost(self, queries_per_month: float) -> float | None:
        """Monthly inference cost in USD at this volume (None without a cost model)."""
        return None if self._monthly_fn is None else self._monthly_fn(queries_per_month)

    def caveat(self, kind: str, text: str) -> None:
        self.caveats.append({"kind": kind, "text": text})

    def plans_at(self, v: float) -> list[dict[str, Any]]:
        """A self-hosted option's serving ways at volume ``v``, cheapest first (empty for a hosted one)."""
        return sorted((p.at(v) for p in self._plans), key=lambda d: (d["monthly_usd"], d["way"], d["offer"]))

    def plan_at(self, v: float) -> dict[str, Any] | None:
        """The cheapest serving way at volume ``v`` (what the option's cost is), or None."""
        plans = self.plans_at(v)
        return plans[0] if plans else None

    def caveat_kinds(self) -> list[str]:
        return [c["kind"] for c in self.caveats]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_id": self.run_id,
            "model_ref": self.model_ref,
            "backend": self.backend,
            "model": self.model,
            "kind": self.kind,
            "fine_tuned": self.fine_tuned,
            "base_model": self.base_model,
            "job_id": self.job_id,
            "data": self.data,
            "data_sha256": self.data_sha256,
            "examples": self.examples,
            "completed": self.completed,
            "failed": self.failed,
            "metric": self.metric,
            "score": self.score,
            "metrics": self.metrics,
            "latency_s": self.latency_s,
            "tokens": self.tokens,
            "throughput_qps": self.throughput_qps,
            "eval_cost_per_1k_queries_usd": self.eval_cost_per_1k_usd,
            "eval_cost_basis": self.eval_cost_basis,
            "serving": self.serving,
            "cost_per_1k_queries_usd": round_or_none(self.cost_per_1k_usd, 6),
            "monthly_inference_usd": round_or_none(self.monthly_usd, 4),
            "cost_basis": self.cost_basis,
            "catalogue_model": self.catalogue_model,
            "training": {
                "job_id": self.job_id,
                "job_state": self.job_state,
                "cost_usd": round_or_none(self.training_cost_usd, 4),
                "cost_basis": self.training_cost_basis,
                "time_s": round_or_none(self.training_time_s, 1),
                "time_basis": self.training_time_basis,
            },
            "eligible": self.eligible,
            "caveats": list(self.caveats),
            "score_n": self.score_n,
            "score_ci95": None if self.score_ci95 is None else [round(x, 6) for x in self.score_ci95],
            "machine": self.machine,
            "serving_plans": [plan_dict(d) for d in self.plans_at(self._q)] if self._plans else [],
            "serving_not_compared": list(self.not_compared),
        }


def plan_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A serving way's figures for report.json (money to 1/100 cent, shares to 8 places)."""
    out = dict(d)
    for k, n in (("monthly_usd", 4), ("cost_per_1k_queries_usd", 6), ("billed_hours", 4),
                 ("capacity_queries_per_month", 0)):
        if isinstance(out.get(k), float):
            out[k] = round(out[k], n) if n else round(out[k])
    for k in ("utilisation", "busy_s_per_query"):  # tiny shares: 6 significant digits
        if isinstance(out.get(k), float):
            out[k] = float(f"{out[k]:.6g}")
    return out


@dataclass
class Report:
    options: list[Option]
    queries_per_month: int
    metric: str
    tolerance: float
    rule: str
    recommendation: dict[str, Any]
    break_even: dict[str, Any]
    winner_by_volume: list[dict[str, Any]]
    warnings: list[dict[str, str]]
    self_host: dict[str, Any]
    price_files: list[str]
    today: _dt.date
    not_compared: list[dict[str, Any]] = field(default_factory=list)  # hosted options not evaluated

    @property
    def comparable(self) -> bool:
        return not any(w["kind"] in ("different_data", "different_examples") for w in self.warnings)

    def option(self, name_or_run: str) -> Option:
        for o in self.options:
            if name_or_run in (o.name, o.run_id):
                return o
        raise KeyError(name_or_run)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": "ftc compare",
            "date": self.today.isoformat(),
            "queries_per_month": self.queries_per_month,
            "metric": self.metric,
            "tolerance": self.tolerance,
            "rule": self.rule,
            "comparable": self.comparable,
            "warnings": list(self.warnings),
            "recommendation": self.recommendation,
            "break_even": self.break_even,
            "winner_by_volume": self.winner_by_volume,
            "self_host": self.self_host,
            "not_compared": list(self.not_compared),
            "options": [o.to_dict() for o in self.options],
            "price_files": [Path(p).name for p in self.price_files],
        }

    def to_markdown(self, image: str | None = REPORT_PNG) -> str:
        from .markdown import report_markdown  # markdown.py imports this module

        return report_markdown(self, image)
