"""What a submission would do, checked before anything is sent: :func:`plan`.

:func:`plan` loads the spec, runs the backend's offline checks (preflight, data
validation, estimate) and applies the budget -- all before any network request and
before a job is recorded. The :class:`Plan` it returns is what ``--dry-run`` shows,
with the files a submission would upload and whether the store says they are already
there. :func:`usd` reads a USD figure from an estimate or a provider's quote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..backends import readiness
from ..budget import check_budget, usable_usd, within_budget
from ..errors import BudgetExceeded, DataError, FtcError, UsageError
from ..fileio import sha256_file
from ..paths import store_path
from ..store import Store
from ._common import backend_named

if TYPE_CHECKING:  # pragma: no cover
    from ..backends import Backend
    from ..spec import JobSpec

__all__ = ["Plan", "plan", "usd", "over", "SHOW_PROBLEMS"]

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
    estimate: Any
    estimate_usd: float | None
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
        est = self.estimate
        if hasattr(est, "to_dict"):
            est = est.to_dict()
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
    listing the first problems with their line numbers), estimates the cost, and applies
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
        ok, errs, n_err, n_warn, examples = _problems(res)
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
    est_usd = usd(est)
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


def usd(value: Any) -> float | None:
    """A USD figure from a CostEstimate, a mapping with a price field, or a number (an int too
    large for a float is ``inf``: not a usable price, see :func:`ftclient.budget.usable_usd`)."""

    def num(v: Any) -> float | None:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return None
        try:
            return float(v)
        except OverflowError:
            return float("inf")

    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return num(value)
    for attr in ("cost_usd", "usd", "estimate_usd"):
        v = num(getattr(value, attr, None))
        if v is not None:
            return v
    if isinstance(value, Mapping):
        for key in ("cost_usd", "usd", "estimate_usd", "provider_usd", "estimated_total_price", "total_price",
                    "estimated_price", "price_usd", "price"):
            v = num(value.get(key))
            if v is not None:
                return v
    return None


def _problems(result: Any) -> tuple[bool, list[Any], int, int, int | None]:
    """(ok, errors, n_errors, n_warnings, examples) of a ValidationResult or its dict form."""
    if isinstance(result, Mapping):
        errs = list(result.get("errors") or [])
        ok = bool(result.get("ok", not errs))
        n_err = sum((result.get("error_counts") or {}).values()) or len(errs)
        n_warn = sum((result.get("warning_counts") or {}).values()) or len(result.get("warnings") or [])
        return ok, errs, n_err, n_warn, result.get("examples")
    errs = list(getattr(result, "errors", []) or [])
    ok = bool(getattr(result, "ok", not errs))
    counts = getattr(result, "error_counts", None) or {}
    wcounts = getattr(result, "warning_counts", None) or {}
    n_err = sum(counts.values()) if counts else len(errs)
    n_warn = sum(wcounts.values()) if wcounts else len(getattr(result, "warnings", []) or [])
    return ok, errs, n_err, n_warn, getattr(result, "examples", None)


def _problem_text(p: Any) -> str:
    if isinstance(p, Mapping):
        line, code, msg = p.get("line"), p.get("code"), p.get("message")
    else:
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
