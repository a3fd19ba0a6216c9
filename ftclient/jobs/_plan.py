"""What a submission would do, checked before anything is sent: :func:`plan`.

:func:`plan` loads the spec, runs the backend's offline checks (preflight, data
validation, estimate) and applies the budget -- all before any network request and
before a job is recorded. The :class:`Plan` it returns is what ``--dry-run`` shows,
with the files a submission would upload and whether the store says they are already
there.

Every backend answers ``estimate(spec)`` with a :class:`ftclient.CostEstimate` (or its
:class:`ftclient.LocalCostEstimate`) and ``validate(spec, path)`` with a
:class:`ftclient.validation.ValidationResult`; anything else is a :class:`ConfigError`
naming the backend. The plan's figure is the estimate's ``cost_usd``.
:func:`quote_usd` reads the USD figure of a provider's own quote (a mapping or a number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..backends import readiness
from ..budget import check_budget, usable_usd, within_budget
from ..cost.records import CostEstimate
from ..errors import BudgetExceeded, ConfigError, DataError, FtcError, UsageError
from ..fileio import sha256_file
from ..paths import store_path
from ..store import Store
from ..validation.common import ValidationResult
from ._common import backend_named

if TYPE_CHECKING:  # pragma: no cover
    from ..backends import Backend
    from ..cost import CostEstimate
    from ..spec import JobSpec

__all__ = ["Plan", "plan", "quote_usd", "usd", "over", "SHOW_PROBLEMS"]

#: How many validation problems an error message lists.
SHOW_PROBLEMS = 5


@dataclass
class Plan:
    """What :func:`submit` would do (and what ``--dry-run`` shows): nothing was sent."""

    backend: str
    spec: Any
    model: str
    warnings: list[str]
    validation: list[dict[str, Any]]
    estimate: "CostEstimate"
    """The backend's estimate (``estimate(spec)``)."""
    estimate_usd: float | None
    """Its ``cost_usd`` (None: unknown)."""
    budget_usd: float | None
    uploads: list[dict[str, Any]]
    backend_obj: Any = field(default=None, repr=False)
    details: list[tuple[str, str]] = field(default_factory=list)
    """(what, value) rows a backend gives about the run (``describe_run``), e.g. device and batch."""
    not_ready: list[Any] = field(default_factory=list)
    """What stops a real submission here (``ConfigError``s: the backend's SDK is not
    installed, no API key); only a dry run's plan has any (:func:`plan` raises otherwise)."""

    @property
    def ready(self) -> bool:
        """Nothing is missing to submit this plan on this machine."""
        return not self.not_ready

    @property
    def within_budget(self) -> bool | None:
        return within_budget(self.estimate_usd, self.budget_usd)

    def to_dict(self) -> dict[str, Any]:
        est = self.estimate.to_dict() if self.estimate is not None else None
        return {
            "backend": self.backend,
            "name": getattr(self.spec, "name", None),
            "model": self.model,
            "warnings": list(self.warnings),
            "validation": self.validation,
            "estimate_usd": self.estimate_usd,
            "budget_usd": self.budget_usd,
            "within_budget": self.within_budget,
            "estimate": est,
            "uploads": self.uploads,
            "details": [list(d) for d in self.details],
            "ready": self.ready,
            "not_ready": [{"message": e.message, "hint": e.hint} for e in self.not_ready],
        }


def plan(spec_or_path: Any, backend_name: str, *, budget: float | None = None, on_retry: Callable | None = None,
         today: Any = None, backend: "Backend | None" = None, require_ready: bool = True) -> Plan:
    """Everything :func:`submit` checks before sending anything; raises on a problem.

    Loads the spec, builds the backend, checks that it can work here
    (:func:`ftclient.backends.readiness`: its SDK or training stack is installed -- else a
    ConfigError with the install line -- and its API key is set -- else a ConfigError
    naming the key's variable), runs ``preflight`` (warnings; raises when the backend will
    not take the job), validates the data with the backend's rules (a :class:`DataError`
    listing the first problems with their line numbers), estimates the cost (the
    :class:`~ftclient.CostEstimate`'s ``cost_usd``; a backend that returns anything else
    from ``validate`` or ``estimate`` is a :class:`ConfigError`), and applies
    ``budget`` (default: the spec's ``budget_usd``): :class:`BudgetExceeded` when the
    estimate is above it. Makes no network request and writes nothing.

    ``require_ready=False`` (a dry run): a missing SDK or key does not raise; it is listed
    in :attr:`Plan.not_ready` and the rest of the plan is made as usual.
    """
    budget = check_budget(budget, "--budget")
    spec = _load(spec_or_path)
    be = backend if backend is not None else backend_named(backend_name, on_retry, ready=False)
    name = getattr(be, "name", None) or backend_name
    not_ready = readiness(be)
    if not_ready and require_ready:
        raise not_ready[0]
    warnings = [str(w) for w in (be.preflight(spec, today=today) or [])]
    for role, path in [("train", spec.data.train)] + ([("eval", spec.data.eval)] if spec.data.eval else []):
        if not Path(path).is_file():
            raise UsageError(f"{path}: the {role} file named in the spec does not exist",
                             hint="Write it with `ftc data prepare`, or fix data.%s in the spec." % role)
    validation = []
    for role, path in [("train", spec.data.train)] + ([("eval", spec.data.eval)] if spec.data.eval else []):
        res = be.validate(spec, path)
        ok, errs, n_err, n_warn, examples = _problems(res, name)
        validation.append({"role": role, "path": str(path), "ok": ok, "examples": examples, "errors": n_err,
                           "warnings": n_warn, "first_errors": [_problem_text(p) for p in errs[:SHOW_PROBLEMS]]})
        if not ok:
            shown = "\n  ".join(_problem_text(p) for p in errs[:SHOW_PROBLEMS]) or "(no details)"
            more = f"\n  ... and {n_err - min(len(errs), SHOW_PROBLEMS)} more" if n_err > SHOW_PROBLEMS else ""
            raise DataError(
                f"{path}: {n_err} problem(s) for {name}; nothing was sent:\n  {shown}{more}",
                hint=f"See them all with `ftc data validate {path} --provider {name}`.",
            )
    est = be.estimate(spec)
    est_usd = estimate_usd(est, name)
    limit = check_budget(budget if budget is not None else spec.budget_usd, "budget_usd")
    if limit is not None and est_usd is not None and not usable_usd(est_usd):
        raise BudgetExceeded(
            f"ftc's estimate for {name} is not a usable price ({est_usd!r}); with a budget set, nothing was sent",
            hint="Check the price catalogue (--prices) and the data, or drop the budget to submit anyway.",
        )
    if limit is not None and est_usd is not None and est_usd > limit:
        raise BudgetExceeded(
            "the estimated cost ${0} on {2} is above the budget ${1}; nothing was sent".format(
                *over(est_usd, limit), name),
            hint="Raise --budget (or budget_usd in the spec), or train on less data or fewer epochs.",
        )
    describe = getattr(be, "describe_run", None)
    details = [(str(k), str(v)) for k, v in (describe(spec) or [])] if callable(describe) else []
    uploads = _uploads(spec, name) if getattr(be, "uploads_files", True) else []
    return Plan(backend=name, spec=spec, model=spec.model_for(name), warnings=warnings, validation=validation,
                estimate=est, estimate_usd=est_usd, budget_usd=limit, uploads=uploads, backend_obj=be,
                details=details, not_ready=not_ready)


def _load(spec_or_path: Any) -> "JobSpec":
    from ..spec import BaseJobSpec, load_spec, parse_spec  # pydantic: only when a spec is read

    if isinstance(spec_or_path, BaseJobSpec):
        return spec_or_path
    if isinstance(spec_or_path, Mapping):
        return parse_spec(dict(spec_or_path))
    p = Path(spec_or_path)
    if not p.exists():
        raise UsageError(f"{p}: no such file", hint="Write one with `ftc spec init`.")
    return load_spec(p)


def over(cost: float, limit: float) -> tuple[str, str]:
    """A cost and the budget it exceeds, with as many decimals as it takes to tell them apart
    ($0.014 vs $0.01, never "$0.01 is above the budget $0.01")."""
    for places in (2, 4, 6):
        a, b = f"{cost:,.{places}f}", f"{limit:,.{places}f}"
        if a != b:
            return a, b
    return f"{cost:,.8f}", f"{limit:,.8f}"


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a number (an int too large for a float is ``inf``: not a
    usable price, see :func:`ftclient.budget.usable_usd`); None otherwise."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        return float(v)
    except OverflowError:
        return float("inf")


def estimate_usd(estimate: Any, backend: str) -> float | None:
    """The USD figure of ``backend``'s estimate: its ``cost_usd`` (None: unknown).

    Raises :class:`ConfigError` when the backend returned something other than a
    :class:`ftclient.CostEstimate` from ``estimate()``, or one whose ``cost_usd`` is not a number."""
    if not isinstance(estimate, CostEstimate):
        raise ConfigError(
            f"backend {backend} returned {_shape(estimate)} from estimate(); expected ftclient.CostEstimate",
            hint=f"The {backend} backend must return a ftclient.CostEstimate (or LocalCostEstimate) from "
                 "estimate(spec), with cost_usd a number or None when unknown.",
        )
    if estimate.cost_usd is None:
        return None
    figure = _number(estimate.cost_usd)
    if figure is None:
        raise ConfigError(
            f"backend {backend} returned an estimate whose cost_usd is {_shape(estimate.cost_usd)}; "
            "expected a number, or None when unknown",
            hint=f"Fix the {backend} backend's estimate(spec).",
        )
    return figure


def quote_usd(quote: Any) -> float | None:
    """The USD figure of a provider's own quote (``Backend.provider_quote``, passed to
    ``confirm``): a number, or a mapping with a price field (``cost_usd``, Together's
    ``estimated_total_price``, ...); None when it has no recognisable price. An int too large
    for a float is ``inf``: not a usable price (:func:`ftclient.budget.usable_usd`)."""
    if quote is None or isinstance(quote, bool):
        return None
    if isinstance(quote, (int, float)):
        return _number(quote)
    if isinstance(quote, Mapping):
        for key in ("cost_usd", "usd", "estimate_usd", "provider_usd", "estimated_total_price", "total_price",
                    "estimated_price", "price_usd", "price"):
            v = _number(quote.get(key))
            if v is not None:
                return v
    return None


#: The former name of :func:`quote_usd`.
usd = quote_usd


def _shape(value: Any) -> str:
    """What a value is, for an error message: ``a dict``, ``None``, ``a str ('x')``."""
    if value is None:
        return "None"
    t = type(value)
    name = t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
    return f"a {name}"


def _problems(result: Any, backend: str) -> tuple[bool, list[Any], int, int, int | None]:
    """(ok, errors, n_errors, n_warnings, examples) of a ValidationResult; a ConfigError naming
    ``backend`` for anything else."""
    if not isinstance(result, ValidationResult):
        raise ConfigError(
            f"backend {backend} returned {_shape(result)} from validate(); "
            "expected ftclient.validation.ValidationResult",
            hint=f"The {backend} backend must return the ValidationResult of "
                 "ftclient.validation.validate_file (or one it builds) from validate(spec, path).",
        )
    n_err = sum(result.error_counts.values())
    n_warn = sum(result.warning_counts.values())
    return result.ok, list(result.errors), n_err, n_warn, result.examples


def _problem_text(p: Any) -> str:
    line, code, msg = getattr(p, "line", None), getattr(p, "code", None), getattr(p, "message", str(p))
    where = "whole file" if not line else f"line {line}"
    return f"{where}: {msg}" + (f" [{code}]" if code else "")


def _uploads(spec: "JobSpec", backend: str) -> list[dict[str, Any]]:
    """The files a submission would send, and whether the store says they are already there."""
    files = [("train", spec.data.train)] + ([("eval", spec.data.eval)] if spec.data.eval else [])
    rows = []
    known = None
    try:
        if store_path().exists():
            known = Store()
    except FtcError:
        known = None
    try:
        for role, path in files:
            p = Path(path)
            sha = sha256_file(p)
            up = known.find_upload(backend, sha) if known is not None else None
            reuse = bool(up and up.provider_file_id and up.status in ("uploaded", "processed"))
            rows.append({"role": role, "path": str(p), "bytes": p.stat().st_size, "sha256": sha,
                         "already_uploaded": reuse, "provider_file_id": up.provider_file_id if reuse else None})
    finally:
        if known is not None:
            known.close()
    return rows
