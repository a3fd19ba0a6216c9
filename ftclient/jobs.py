"""Submit, watch, resume and manage fine-tuning jobs: the Python API behind ``ftc train``
and ``ftc jobs``.

Everything here works through one backend (``ftclient.backends.get_backend``) and the
job store (``ftclient.store.Store``); the CLI only parses arguments and renders what
these functions return.

* :func:`plan` / :func:`submit`: load the spec, run the backend's offline checks
  (preflight, data validation, estimate), apply the budget -- all before any network
  request and before a job is recorded -- then record the job and hand it to
  ``backend.submit`` (write-ahead, resumable). When the provider quotes its own price
  the budget applies to that figure too.
* :func:`watch`: poll a job with backoff until it ends, storing its state and events.
* :func:`resume`: finish what killed processes left: reconcile and submit again (the
  backend never creates a second job), then watch.
* :func:`cancel`, :func:`show`, :func:`list_jobs`, :func:`events`, :func:`checkpoints`,
  :func:`chat`.

Polling budget (:class:`PollPolicy` defaults): the first poll is immediate, then the
wait grows 5 s, 7.5 s, 11 s, 17 s, 25 s, 30 s, 30 s... and goes back to 5 s whenever the
job's state changes, so a change is seen within 30 s and a quiet job-hour costs about
123 status requests plus one events request every 4th poll (32).
"""

from __future__ import annotations

import contextlib
import os
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .budget import check_budget, usable_usd, within_budget
from .errors import BudgetExceeded, DataError, FtcError, UsageError
from .errors import Interrupted as _Interrupted
from .fileio import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from .backends import Backend, JobEvent, JobStatus
    from .spec import JobSpec
    from .store import Job, Store

__all__ = [
    "Plan",
    "Quote",
    "PollPolicy",
    "DEFAULT_POLL",
    "WatchUpdate",
    "ResumeOutcome",
    "JobView",
    "ChatReply",
    "Declined",
    "Interrupted",
    "plan",
    "submit",
    "watch",
    "refresh",
    "resume",
    "cancel",
    "show",
    "list_jobs",
    "events",
    "checkpoints",
    "chat",
]

log = logging.getLogger("ftclient.jobs")

#: How many validation problems an error message lists.
SHOW_PROBLEMS = 5


class Declined(FtcError):
    """The submission was not confirmed (the provider's quote was refused); nothing was created."""

    exit_code = 1


class Interrupted(_Interrupted):
    """Ctrl-C while ftc was submitting or watching; the job itself is left as it is (exit 130)."""

    exit_code = 130


# --------------------------------------------------------------------------- records


@dataclass
class Quote:
    """What ``confirm`` is asked about when the provider gives its own price before creating."""

    provider_usd: float | None
    """The provider's figure, in USD (None when its answer had no recognisable price)."""
    estimate_usd: float | None
    """ftc's own offline estimate."""
    budget_usd: float | None
    raw: dict[str, Any] = field(default_factory=dict)
    """The provider's estimate as the backend passed it."""

    def to_dict(self) -> dict[str, Any]:
        return {"provider_usd": self.provider_usd, "estimate_usd": self.estimate_usd,
                "budget_usd": self.budget_usd, "raw": self.raw}


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


@dataclass(frozen=True)
class PollPolicy:
    """How :func:`watch` polls. ``sleep`` and ``clock`` are hooks for tests."""

    initial: float = 5.0
    """Seconds before the second poll, and after every state change."""
    factor: float = 1.5
    """The wait grows by this factor while nothing changes..."""
    max_interval: float = 30.0
    """...up to this (so a change is seen within this many seconds)."""
    events_every: int = 4
    """Events are fetched when the state changed, at the end, and on every Nth poll."""
    timeout: float | None = None
    """Stop watching after this many seconds (the job keeps running); None: until it ends."""
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def next_interval(self, current: float | None, changed: bool) -> float:
        if changed or current is None:
            return self.initial
        return min(self.max_interval, current * self.factor)


#: The policy :func:`watch` uses when none is given (tests may replace it).
DEFAULT_POLL = PollPolicy()


@dataclass
class WatchUpdate:
    """Passed to ``on_update`` after every poll."""

    job: Any
    """The store's job record, after this poll was stored."""
    status: Any
    """The backend's ``JobStatus``."""
    new_events: list[Any]
    """Events first seen at this poll (``JobEvent``), oldest first."""
    changed: bool
    """The state changed at this poll (the first poll counts as a change)."""
    polls: int
    event_polls: int
    elapsed: float
    next_poll_in: float | None
    """Seconds until the next poll; None when the job ended."""


@dataclass
class ResumeOutcome:
    """What :func:`resume` did with one job."""

    job_id: str | None
    action: str
    """``submitted`` (sent again after a crash before the create), ``reconciled`` (an
    uncertain create was settled with the provider), ``watched``, ``refreshed``,
    ``skipped`` (another live process has it, or nothing to do), ``error``."""
    state: str | None
    detail: str = ""
    job: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "action": self.action, "state": self.state, "detail": self.detail,
                "job": self.job.to_dict() if self.job is not None else None}


@dataclass
class JobView:
    """A job as :func:`show` sees it: the store's record, plus a fresh status when asked."""

    job: Any
    status: Any = None
    events: list[Any] = field(default_factory=list)
    operations: list[Any] = field(default_factory=list)
    refresh_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job.to_dict(),
            "status": self.status.to_dict() if self.status is not None else None,
            "events": [e.to_dict() for e in self.events],
            "operations": [o.to_dict() for o in self.operations],
            "refresh_error": self.refresh_error,
        }


@dataclass
class ChatReply:
    backend: str
    model: str
    text: str
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "job_id": self.job_id, "text": self.text}


# --------------------------------------------------------------------------- helpers


def _opened(store: "Store | None") -> "contextlib.AbstractContextManager[Store]":
    from .store import opened

    return opened(store)


def _load(spec_or_path: Any) -> "JobSpec":
    from .spec import BaseJobSpec, load_spec, parse_spec

    if isinstance(spec_or_path, BaseJobSpec):
        return spec_or_path
    if isinstance(spec_or_path, Mapping):
        return parse_spec(dict(spec_or_path))
    p = Path(spec_or_path)
    if not p.exists():
        raise UsageError(f"{p}: no such file", hint="Write one with `ftc spec init`.")
    return load_spec(p)


def _spec_of(job: "Job") -> "JobSpec":
    from .spec import parse_spec

    return parse_spec(job.spec, source=f"the spec stored with {job.id}")


def _backend(name: str, on_retry: Callable | None, *, ready: bool = True) -> "Backend":
    """The backend ``name``; with ``ready``, a ConfigError (exit 2, the install line) when
    what it imports to work (its SDK, the training stack) is not installed."""
    from .backends import check_ready, get_backend

    be = get_backend(name, on_retry=on_retry) if on_retry is not None else get_backend(name)
    if ready:
        check_ready(be, key=False)  # a missing key is the backend's own ConfigError when it needs one
    return be


def _over(cost: float, limit: float) -> tuple[str, str]:
    """A cost and the budget it exceeds, with as many decimals as it takes to tell them apart
    ($0.014 vs $0.01, never "$0.01 is above the budget $0.01")."""
    for places in (2, 4, 6):
        a, b = f"{cost:,.{places}f}", f"{limit:,.{places}f}"
        if a != b:
            return a, b
    return f"{cost:,.8f}", f"{limit:,.8f}"


def _usd(value: Any) -> float | None:
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
    from .paths import store_path

    files = [("train", spec.data.train)] + ([("eval", spec.data.eval)] if spec.data.eval else [])
    rows = []
    known = None
    try:
        if store_path().exists():
            from .store import Store

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


def _redact(text: Any) -> str | None:
    if text is None:
        return None
    from .secrets import redact

    return redact(text)


# --------------------------------------------------------------------------- plan and submit


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
    from .backends import readiness

    budget = check_budget(budget, "--budget")
    spec = _load(spec_or_path)
    be = backend if backend is not None else _backend(backend_name, on_retry, ready=False)
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
    est_usd = _usd(est)
    limit = check_budget(budget if budget is not None else spec.budget_usd, "budget_usd")
    if limit is not None and est_usd is not None and not usable_usd(est_usd):
        raise BudgetExceeded(
            f"ftc's estimate for {name} is not a usable price ({est_usd!r}); with a budget set, nothing was sent",
            hint="Check the price catalogue (--prices) and the data, or drop the budget to submit anyway.",
        )
    if limit is not None and est_usd is not None and est_usd > limit:
        raise BudgetExceeded(
            "the estimated cost ${0} on {2} is above the budget ${1}; nothing was sent".format(
                *_over(est_usd, limit), name),
            hint="Raise --budget (or budget_usd in the spec), or train on less data or fewer epochs.",
        )
    describe = getattr(be, "describe_run", None)
    details = [(str(k), str(v)) for k, v in (describe(spec) or [])] if callable(describe) else []
    uploads = _uploads(spec, name) if getattr(be, "uploads_files", True) else []
    return Plan(backend=name, spec=spec, model=spec.model_for(name), warnings=warnings, validation=validation,
                estimate=est, estimate_usd=est_usd, budget_usd=limit, uploads=uploads, backend_obj=be,
                details=details, not_ready=not_ready)


class _Confirm:
    """Wraps the caller's ``confirm``: shows both figures and applies the budget to the
    provider's figure before asking; remembers why it refused."""

    def __init__(self, estimate_usd: float | None, budget_usd: float | None, user: Callable[[Quote], bool] | None):
        self.estimate_usd, self.budget_usd, self.user = estimate_usd, budget_usd, user
        self.refused: FtcError | None = None
        self.quote: Quote | None = None

    def __call__(self, provider_estimate: Any) -> bool:
        raw = dict(provider_estimate) if isinstance(provider_estimate, Mapping) else {"value": provider_estimate}
        figure = _usd(provider_estimate)
        q = Quote(figure if usable_usd(figure) else None, self.estimate_usd, self.budget_usd, raw)
        self.quote = q
        if figure is not None and self.budget_usd is not None and not usable_usd(figure):
            self.refused = BudgetExceeded(
                f"the provider's estimate is not a usable price ({figure!r}), so it cannot be held to the budget "
                f"${self.budget_usd:,.2f}; the job was not created",
                hint="Try again later, or drop the budget if you accept the provider's price unseen.",
            )
            return False
        if q.provider_usd is not None and self.budget_usd is not None and q.provider_usd > self.budget_usd:
            ours = f" (ftc estimated ${q.estimate_usd:,.2f})" if q.estimate_usd is not None else ""
            self.refused = BudgetExceeded(
                "the provider's estimate ${} is above the budget ${}{}; the job was not created".format(
                    *_over(q.provider_usd, self.budget_usd), ours),
                hint="Raise --budget (or budget_usd in the spec) if you accept the provider's price.",
            )
            return False
        if self.user is not None and not self.user(q):
            self.refused = Declined("the provider's estimate was not accepted; the job was not created")
            return False
        return True


def submit(spec_or_path: Any, backend_name: str | None = None, *, budget: float | None = None, dry_run: bool = False,
           confirm: Callable[[Quote], bool] | None = None, on_progress: Callable | None = None,
           on_retry: Callable | None = None, store: "Store | None" = None, today: Any = None) -> "Job | Plan":
    """Check, then submit a job; returns the store's job record (or the :class:`Plan` for a dry run).

    ``spec_or_path``: a spec file, a ``JobSpec``, a mapping, or a :class:`Plan` from
    :func:`plan` (then only what :func:`ftclient.backends.readiness` checks -- the
    backend's SDK and API key -- is checked again). Everything :func:`plan` does happens
    first, so a problem or a budget overrun stops before any network request and before
    a job is recorded. ``dry_run`` returns the plan there.

    Then the job is recorded (``store.new_job``, with the estimate) and handed to
    ``backend.submit``. When the provider quotes its own price, the budget applies to it
    too and ``confirm(Quote)`` is asked (when given); a refusal creates nothing
    (:class:`BudgetExceeded` / :class:`Declined`; the store's job is marked cancelled).
    ``on_progress(message, fraction)`` follows uploads and processing; ``on_retry(event)``
    each retry.

    After Ctrl-C or a network failure the job stays in the store and
    :func:`resume` finishes it without ever creating a second provider job.
    """
    if isinstance(spec_or_path, Plan):
        p = spec_or_path
        if p.backend_obj is None:
            p.backend_obj = _backend(p.backend, on_retry, ready=False)
        if not dry_run:
            from .backends import check_ready

            check_ready(p.backend_obj)  # the SDK and the key, again: before the job is recorded
        budget = check_budget(budget, "--budget")
        if budget is not None and budget != p.budget_usd:
            p.budget_usd = budget
            if p.estimate_usd is not None and not usable_usd(p.estimate_usd):
                raise BudgetExceeded(f"ftc's estimate is not a usable price ({p.estimate_usd!r}); with a budget set, "
                                     "nothing was sent")
            if p.estimate_usd is not None and p.estimate_usd > budget:
                raise BudgetExceeded("the estimated cost ${} is above the budget ${}; nothing was sent".format(
                    *_over(p.estimate_usd, budget)))
    else:
        if backend_name is None:
            raise UsageError("give a backend", hint="e.g. --backend openai")
        p = plan(spec_or_path, backend_name, budget=budget, on_retry=on_retry, today=today, require_ready=not dry_run)
    if dry_run:
        return p
    with _opened(store) as st:
        spec = p.spec
        job = st.new_job(p.backend, spec.model_dump(mode="json"), model=p.model, estimate_usd=p.estimate_usd)
        _submit_job(p.backend_obj, spec, job, st, budget=p.budget_usd, confirm=confirm, on_progress=on_progress)
        return st.get_job(job.id)


def _submit_job(be: "Backend", spec: "JobSpec", job: "Job", st: "Store", *, budget: float | None,
                confirm: Callable | None, on_progress: Callable | None) -> "Job":
    """``backend.submit`` with the confirm wrapper, and the store kept truthful on every outcome."""
    from .backends import JobState

    gate = _Confirm(job.estimate_usd, budget, confirm)
    try:
        res = be.submit(spec, job=job, store=st, on_progress=on_progress, confirm=gate)
    except KeyboardInterrupt:
        st.release(job.id)
        raise Interrupted(
            f"interrupted while submitting {job.id}; what was sent is recorded",
            hint=f"Finish it with `ftc jobs resume {job.id}` (it never creates the job twice).",
        ) from None
    except BaseException as e:
        if gate.refused is not None:
            _settle_refused(st, job.id, gate.refused)
            raise gate.refused from None
        _after_failure(st, job.id, e)
        raise
    if gate.refused is not None and not st.get_job(job.id).provider_job_id:
        _settle_refused(st, job.id, gate.refused)
        raise gate.refused
    cur = st.get_job(job.id)
    pid = getattr(res, "provider_job_id", None)
    state = getattr(res, "state", None)
    fields: dict[str, Any] = {}
    if pid and cur.provider_job_id != pid:
        fields["provider_job_id"] = pid
    if state is not None and not cur.is_final:
        sv = JobState(getattr(state, "value", state)).value
        if sv != JobState.PENDING.value and (sv != cur.state or fields):
            cur = st.update_state(job.id, sv, **fields)
        elif fields:
            cur = st.update_state(job.id, cur.state, **fields)
    return cur


def _settle_refused(st: "Store", job_id: str, why: FtcError) -> None:
    from .store import StoreError

    job = st.get_job(job_id)
    if job.provider_job_id:
        return
    for op in st.operations(job_id, "create"):
        if op.is_open:
            return  # a create may be out: leave it to `ftc jobs resume` to reconcile
    with contextlib.suppress(StoreError):
        st.update_state(job_id, "cancelled", error=f"not submitted: {why.message}")
    st.release(job_id)


def _after_failure(st: "Store", job_id: str, e: BaseException) -> None:
    """After ``backend.submit`` raised: a definite refusal with nothing created ends the
    job failed; anything that may be retried or may have created the job stays for resume."""
    from .store import StoreError

    job = st.get_job(job_id)
    st.release(job_id)
    if job.provider_job_id or job.is_final or job.state == "submit_unknown":
        return
    if any(op.is_open for op in st.operations(job_id)):
        return
    if not isinstance(e, FtcError) or type(e).__name__ in ("RetryExhausted", "AmbiguousResult"):
        return  # transient or unexpected: `ftc jobs resume` can try again
    with contextlib.suppress(StoreError):
        st.update_state(job_id, "failed", error=e.message)


# --------------------------------------------------------------------------- watch


def _status_key(s: "JobStatus") -> tuple:
    return (getattr(s.state, "value", s.state), s.provider_state)


def _apply_status(st: "Store", job: "Job", s: "JobStatus", be: "Backend") -> "Job":
    """Record a status in the store (state, progress, fine-tuned model, the provider's error)."""
    from .backends import JobState
    from .store import StoreError

    state = JobState(getattr(s.state, "value", s.state))
    if state == JobState.SUBMIT_UNKNOWN:
        return job
    fields: dict[str, Any] = {}
    model = s.fine_tuned_model
    if state == JobState.SUCCEEDED and not model and job.provider_job_id:
        with contextlib.suppress(FtcError):
            model = be.result(job.provider_job_id)
    if model and model != job.fine_tuned_model:
        fields["fine_tuned_model"] = model
    if s.error and _redact(s.error) != job.error:
        fields["error"] = s.error
    for name in ("step", "total_steps", "loss", "trained_tokens", "cost_so_far_usd"):
        value = getattr(s, name, None)
        if value is not None and value != getattr(job, name, None):
            fields[name] = value
    if state.value == job.state and not fields:
        return job
    try:
        return st.update_state(job.id, state.value, **fields)
    except StoreError as e:  # the store has it final already (e.g. cancelled here first)
        log.info("%s", e.message)
        return st.get_job(job.id)


def _fetch_events(st: "Store", job: "Job", be: "Backend") -> list["JobEvent"]:
    evs = list(be.events(job.provider_job_id, after=job.last_event_cursor) or [])
    if not evs:
        return []
    cursor = str(getattr(evs[-1], "id", None) or job.last_event_cursor or "") or None
    st.add_events(job.id, evs, cursor=cursor)
    return evs


def refresh(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None,
            on_retry: Callable | None = None, with_events: bool = True) -> tuple["Job", "JobStatus | None"]:
    """One status request (and one events request) for a job; stores what it learns."""
    with _opened(store) as st:
        job = st.get_job(job_ref)
        if not job.provider_job_id:
            return job, None
        be = backend if backend is not None else _backend(job.backend, on_retry)
        s = be.status(job.provider_job_id)
        job = _apply_status(st, job, s, be)
        if with_events:
            _fetch_events(st, job, be)
            job = st.get_job(job.id)
        return job, s


def watch(job_ref: str, *, on_update: Callable[[WatchUpdate], None] | None = None, store: "Store | None" = None,
          backend: "Backend | None" = None, poll: PollPolicy | None = None,
          on_retry: Callable | None = None) -> "JobStatus":
    """Poll a job until it ends; returns its final ``JobStatus``.

    Waits ``poll.initial`` seconds after the first poll and after every state change,
    growing by ``poll.factor`` up to ``poll.max_interval`` while nothing changes (step
    and loss updates are not changes: they would keep the wait short for the whole
    run). Events are read incrementally (after the store's cursor) when the state
    changed, on every ``poll.events_every``-th poll, and at the end. Every poll is
    stored and heartbeats this process as the job's worker (it claims the job when no
    live process holds it).

    Ctrl-C raises :class:`Interrupted` (exit 130): the job keeps running at the
    provider; ``ftc jobs watch ID`` picks it up again. With ``poll.timeout`` it returns
    the last (not final) status when the time is up.
    """
    pol = poll if poll is not None else DEFAULT_POLL
    with _opened(store) as st:
        job = st.get_job(job_ref)
        if not job.provider_job_id:
            hint = (f"It was never sent to {job.backend}." if job.is_final
                    else f"Finish submitting it with `ftc jobs resume {job.id}`.")
            raise UsageError(f"{job.id} has no job at {job.backend} yet", hint=hint)
        be = backend if backend is not None else _backend(job.backend, on_retry)
        claimed = st.claim(job.id)
        start = pol.clock()
        polls = event_polls = 0
        last_key = None
        interval: float | None = None
        try:
            while True:
                s = be.status(job.provider_job_id)
                polls += 1
                key = _status_key(s)
                changed = key != last_key
                last_key = key
                job = _apply_status(st, job, s, be)
                new: list[Any] = []
                final = bool(getattr(s, "final", False))
                if changed or final or (pol.events_every and polls % pol.events_every == 0):
                    new = _fetch_events(st, job, be)
                    event_polls += 1
                    job = st.get_job(job.id)
                if claimed:
                    st.heartbeat(job.id)
                elapsed = pol.clock() - start
                timed_out = pol.timeout is not None and elapsed >= pol.timeout
                interval = None if (final or timed_out) else pol.next_interval(interval, changed)
                if on_update is not None:
                    on_update(WatchUpdate(job, s, new, changed, polls, event_polls, elapsed, interval))
                if interval is None:
                    return s
                if pol.timeout is not None:
                    interval = min(interval, max(0.0, pol.timeout - elapsed))
                pol.sleep(interval)
        except KeyboardInterrupt:
            raise Interrupted(
                f"stopped watching {job.id}; the job keeps running at {job.backend}",
                hint=f"Watch it again with `ftc jobs watch {job.id}`, or stop it with `ftc jobs cancel {job.id}`.",
            ) from None
        finally:
            if claimed:
                with contextlib.suppress(Exception):
                    st.release(job.id)


# --------------------------------------------------------------------------- resume


def resume(job_ref: str | None = None, *, store: "Store | None" = None, watch_jobs: bool = True,
           budget: float | None = None, confirm: Callable[[Quote], bool] | None = None,
           on_progress: Callable | None = None, on_update: Callable[[WatchUpdate], None] | None = None,
           on_retry: Callable | None = None, on_outcome: Callable[[ResumeOutcome], None] | None = None,
           poll: PollPolicy | None = None, backends: Mapping[str, "Backend"] | None = None,
           reopen: bool = False) -> list[ResumeOutcome]:
    """Finish what killed processes left: every ``store.pending_work()`` item, or one job.

    ``reopen`` (with ``job_ref``): continue a *cancelled* job, where its backend can
    (``backend.reopen``: the local backend, from the job's last checkpoint); a hosted
    provider's cancel is final, so there it is an error.

    Each job is first claimed (:meth:`Store.claim`); one that another live process holds
    is skipped, so two ``ftc jobs resume`` at once never work on the same job. Then:

    * no provider job yet (recorded but never sent, killed during the upload, a create
      sent without an answer, ``submit_unknown``): ``backend.submit`` again, which
      reconciles an uncertain create by the job's client token and never creates a
      second job; the budget (``budget`` or the spec's) still applies to a provider quote;
    * a cancel left open: sent again (cancelling is idempotent);
    * then, with ``watch_jobs``, every job that is not final is watched to its end (else
      its status is refreshed once).

    Returns one :class:`ResumeOutcome` per job (also passed to ``on_outcome``).
    """
    from .store import StoreError

    outcomes: list[ResumeOutcome] = []
    cache: dict[str, Any] = dict(backends or {})

    def backend_for(name: str):
        if name not in cache:
            cache[name] = _backend(name, on_retry, ready=False)  # checked below, before anything is touched
        return cache[name]

    def done(o: ResumeOutcome) -> None:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)

    if reopen and job_ref is None:
        raise UsageError("--reopen continues one cancelled job: give its id", hint="e.g. ftc jobs resume JOB --reopen")
    with _opened(store) as st:
        if job_ref is not None:
            job = st.get_job(job_ref)
            items = [(job.id, [o for o in st.operations(job.id) if o.is_open])]
        else:
            items = []
            for w in st.pending_work():
                if w.job is None:
                    op = w.operations[0]
                    done(ResumeOutcome(None, "skipped", None,
                                       f"{op.kind} operation {op.id} (no job): the next submission of the same file "
                                       "reconciles it"))
                    continue
                items.append((w.job.id, list(w.operations)))
        _check_resumable(st, items, backend_for, reopen=reopen)
        claimed: list[str] = []
        for job_id, _ops in items:
            if st.claim(job_id):
                claimed.append(job_id)
            else:
                j = st.get_job(job_id)
                done(ResumeOutcome(job_id, "skipped", j.state,
                                   f"process {j.pid} on {j.worker_host} is working on it", j))
        to_watch: list[str] = []
        try:
            # 1. settle submissions and open operations (quick), before watching anything (slow)
            for job_id in claimed:
                job = st.get_job(job_id)
                open_ops = [o for o in st.operations(job_id) if o.is_open]
                try:
                    if reopen and job.state == "cancelled":
                        job = _reopen(st, backend_for(job.backend), job)
                        done(ResumeOutcome(job_id, "reopened", job.state, "continues from its last checkpoint", job))
                        to_watch.append(job_id)
                        continue
                    if job.is_final and not open_ops:
                        done(ResumeOutcome(job_id, "skipped", job.state, f"already {job.state}", job))
                        continue
                    be = backend_for(job.backend)
                    recorded = False
                    if not job.provider_job_id and not job.is_final:
                        had_create = any(o.kind == "create" for o in open_ops) or job.state == "submit_unknown"
                        spec = _spec_of(job)
                        limit = check_budget(budget if budget is not None else spec.budget_usd, "budget_usd")
                        job = _submit_job(be, spec, job, st, budget=limit, confirm=confirm, on_progress=on_progress)
                        action = "reconciled" if had_create else "submitted"
                        done(ResumeOutcome(job_id, action, job.state,
                                           f"{job.backend} job {job.provider_job_id}" if job.provider_job_id else "", job))
                        recorded = True
                    for op in open_ops:
                        if op.kind == "download":  # written atomically: nothing partial to keep
                            st.fail_operation(op.id, "interrupted before it finished", ambiguous=False)
                            done(ResumeOutcome(job_id, "settled", job.state, "an interrupted download was "
                                               f"dropped; run `ftc jobs download {job_id}` again", job))
                            recorded = True
                        if op.kind == "cancel" and job.provider_job_id:
                            job = _cancel_provider(st, be, st.get_job(job_id), reuse_op=op)
                            done(ResumeOutcome(job_id, "cancelled", job.state, "the cancel request was sent again", job))
                            recorded = True
                    job = st.get_job(job_id)
                    if job.provider_job_id and not job.is_final:
                        to_watch.append(job_id)
                    elif not recorded:
                        done(ResumeOutcome(job_id, "skipped", job.state, f"already {job.state}", job))
                except (FtcError, StoreError) as e:
                    done(ResumeOutcome(job_id, "error", st.get_job(job_id).state, e.message, st.get_job(job_id)))
            # 2. watch (or refresh) what is still running
            for job_id in to_watch:
                job = st.get_job(job_id)
                be = backend_for(job.backend)
                try:
                    if watch_jobs:
                        watch(job_id, on_update=on_update, store=st, backend=be, poll=poll)
                        job = st.get_job(job_id)
                        done(ResumeOutcome(job_id, "watched", job.state, job.error or job.fine_tuned_model or "", job))
                    else:
                        job, _s = refresh(job_id, store=st, backend=be)
                        done(ResumeOutcome(job_id, "refreshed", job.state, "", job))
                except Interrupted:
                    raise
                except FtcError as e:
                    done(ResumeOutcome(job_id, "error", st.get_job(job_id).state, e.message, st.get_job(job_id)))
        except KeyboardInterrupt:
            raise Interrupted("interrupted while resuming; nothing is lost",
                              hint="Run `ftc jobs resume` again to finish.") from None
        finally:
            for job_id in claimed:
                with contextlib.suppress(Exception):
                    st.release(job_id)
    return outcomes


def _check_resumable(st: "Store", items: list, backend_for: Callable[[str], Any], *, reopen: bool) -> None:
    """Before resume touches any job: every backend it will use can work here (its SDK or
    training stack installed, its API key set); else the ConfigError (exit 2) with the
    install line or the key's variable, and every job left as it was."""
    from .backends import readiness

    by_backend: dict[str, list[Any]] = {}
    for job_id, ops in items:
        job = st.get_job(job_id)
        if job.is_final and not ops and not (reopen and job.state == "cancelled"):
            continue  # skipped without asking its backend anything
        by_backend.setdefault(job.backend, []).append(job)
    for name, jobs_ in by_backend.items():
        problems = readiness(backend_for(name))
        if problems:
            e = problems[0]
            left = ", ".join(f"{j.id} ({j.state})" for j in jobs_[:5]) + (" ..." if len(jobs_) > 5 else "")
            raise type(e)(e.message, hint=f"{e.hint} Nothing was changed: {left} left as "
                                          f"{'it was' if len(jobs_) == 1 else 'they were'}.")


def _reopen(st: "Store", be: "Backend", job: "Job") -> "Job":
    """A cancelled job running again, where its backend can continue one (``be.reopen``)."""
    fn = getattr(be, "reopen", None)
    if not callable(fn) or not job.provider_job_id:
        raise UsageError(f"{job.id}: a cancelled {job.backend} job cannot be continued (the provider's cancel "
                         "is final)", hint=f"Start a new job: ftc train SPEC --backend {job.backend}")
    from .store import FINAL_STATES

    s = fn(job.provider_job_id)
    state = getattr(s.state, "value", s.state)
    return st.update_state(job.id, "queued" if state in FINAL_STATES else state, force=True, error=None)


# --------------------------------------------------------------------------- cancel and queries


def _cancel_provider(st: "Store", be: "Backend", job: "Job", reuse_op: Any = None) -> "Job":
    if reuse_op is not None:
        op = reuse_op
        if op.state == "intent":
            st.mark_sent(op.id)
    else:
        op = st.begin_operation(job.id, "cancel", {"provider_job_id": job.provider_job_id})
        st.mark_sent(op.id)
    try:
        s = be.cancel(job.provider_job_id)
    except BaseException as e:
        ambiguous = not isinstance(e, FtcError) or type(e).__name__ in ("AmbiguousResult", "RetryExhausted")
        st.fail_operation(op.id, e, ambiguous=ambiguous)
        if not ambiguous:
            # e.g. 409 "already finished": let the provider's word on the state settle it
            with contextlib.suppress(FtcError):
                return _apply_status(st, st.get_job(job.id), be.status(job.provider_job_id), be)
        raise
    st.finish_operation(op.id, s.to_dict() if hasattr(s, "to_dict") else None)
    return _apply_status(st, st.get_job(job.id), s, be)


def cancel(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None,
           on_retry: Callable | None = None) -> "Job":
    """Ask the provider to stop a job; returns the store's record afterwards.

    A job never sent is marked cancelled here. A job whose create may be in flight is
    reconciled first (by its client token); one another live process is still
    submitting is refused (stop that process first). A final job is returned as it is.
    """
    with _opened(store) as st:
        job = st.get_job(job_ref)
        if job.is_final:
            return job
        # a job never sent (no create out) is cancelled here: its backend's SDK is not needed
        asks = bool(job.provider_job_id) or any(o.is_open for o in st.operations(job.id, "create"))
        be = backend if backend is not None else _backend(job.backend, on_retry, ready=asks)
        if job.provider_job_id:
            return _cancel_provider(st, be, job)
        if not st.claim(job.id):
            raise UsageError(f"{job.id} is being submitted by process {job.pid} on {job.worker_host}",
                             hint="Stop that process (Ctrl-C) first, or cancel once it has been created.")
        try:
            for op in st.operations(job.id, "create"):
                if op.is_open:
                    found = be.find_by_client_token(job.client_token)
                    if found:
                        st.finish_operation(op.id, {"id": found, "reconciled": True}, provider_job_id=found)
                        return _cancel_provider(st, be, st.get_job(job.id))
                    st.fail_operation(op.id, "not found at the provider when cancelling", ambiguous=False)
            return st.update_state(job.id, "cancelled", error="cancelled before it was sent to the provider")
        finally:
            st.release(job.id)


def list_jobs(*, store: "Store | None" = None, backend: str | None = None, states: Sequence[str] | None = None,
              limit: int | None = 50) -> list["Job"]:
    """The store's jobs, newest first (no network)."""
    with _opened(store) as st:
        return st.list_jobs(backend=backend, states=states, limit=limit)


def show(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None, refresh_status: bool = True,
         on_retry: Callable | None = None, last_events: int = 10) -> JobView:
    """A job: the store's record, a fresh status from the backend (unless the job is
    final or ``refresh_status`` is False) and its last stored events. A failed refresh
    (no key, no network) is reported in ``refresh_error``, not raised."""
    with _opened(store) as st:
        job = st.get_job(job_ref)
        status = None
        err = None
        if refresh_status and job.provider_job_id and not job.is_final:
            try:
                job, status = refresh(job.id, store=st, backend=backend, on_retry=on_retry)
            except FtcError as e:
                err = e.message
        evs = st.list_events(job.id)
        return JobView(job=st.get_job(job.id), status=status, events=evs[-last_events:] if last_events else evs,
                       operations=st.operations(job.id), refresh_error=err)


def events(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None, refresh_events: bool = True,
           on_retry: Callable | None = None, limit: int | None = None) -> list[Any]:
    """A job's events (the store's, after fetching new ones from the backend), oldest first."""
    with _opened(store) as st:
        job = st.get_job(job_ref)
        if refresh_events and job.provider_job_id:
            be = backend if backend is not None else _backend(job.backend, on_retry)
            _fetch_events(st, job, be)
        evs = st.list_events(job.id)
        return evs[-limit:] if limit else evs


def checkpoints(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None,
                on_retry: Callable | None = None) -> list[Any]:
    """The checkpoints the backend keeps for a job (empty when it has none or was never sent)."""
    with _opened(store) as st:
        job = st.get_job(job_ref)
        if not job.provider_job_id:
            return []
        be = backend if backend is not None else _backend(job.backend, on_retry)
        return list(be.checkpoints(job.provider_job_id) or [])


def download(job_ref: str, dest: str | os.PathLike | None = None, *, checkpoint: str = "adapter",
             step: int | None = None, store: "Store | None" = None, backend: "Backend | None" = None,
             on_progress: Callable | None = None, on_retry: Callable | None = None) -> Path:
    """Download a job's model (``checkpoint``: adapter | merged) or the checkpoint at
    ``step``, where its backend allows it (Together does; OpenAI does not). Recorded as a
    ``download`` operation; the file appears whole or not at all. Default destination:
    the job's directory under FTC_HOME."""
    from .errors import UsageError
    from .paths import job_dir

    with _opened(store) as st:
        job = st.get_job(job_ref)
        if not job.provider_job_id:
            raise UsageError(f"{job.id} was never created at {job.backend}: there is nothing to download")
        if step is None and job.state != "succeeded":
            raise UsageError(f"{job.id} is {job.state}: its model can be downloaded once it succeeded",
                             hint="Give --step N for one of its checkpoints (`ftc jobs checkpoints`).")
        be = backend if backend is not None else _backend(job.backend, on_retry)
        if not hasattr(be, "download"):
            raise UsageError(f"the {job.backend} backend offers no downloads")
        what = f"step{step}" if step is not None else checkpoint
        target = Path(dest) if dest else job_dir(job.id, create=True) / f"{job.provider_job_id}-{what}.tar.zst"
        op = st.begin_operation(job.id, "download", {"checkpoint": checkpoint, "step": step, "dest": str(target)})
        st.mark_sent(op.id)
        try:
            path = Path(be.download(job.provider_job_id, target, checkpoint=checkpoint, step=step,
                                    on_progress=on_progress))
        except BaseException as e:
            st.fail_operation(op.id, e if isinstance(e, FtcError) else f"interrupted: {type(e).__name__}",
                              ambiguous=False)
            raise
        st.finish_operation(op.id, {"path": str(path), "bytes": path.stat().st_size})
        return path


def chat(model_or_job: str, prompt: str, *, backend: str | None = None, system: str | None = None,
         store: "Store | None" = None, on_retry: Callable | None = None, **kw: Any) -> ChatReply:
    """One chat completion from a fine-tuned (or base) model.

    ``model_or_job``: an ftc job id (or unique prefix, or the provider's job id) whose
    result is known -- its backend and fine-tuned model are used -- or, with
    ``backend``, a model id as the provider names it.
    """
    ref = (model_or_job or "").strip()
    if not ref:
        raise UsageError("give a model id or an ftc job id")
    if not prompt:
        raise UsageError("give a prompt")
    job = None
    if backend is None or ref.startswith("ftc-"):
        from .paths import store_path

        if backend is None and not store_path().exists() and store is None:
            raise UsageError(f"no job {ref!r} (no job has been submitted yet)",
                             hint="Give a model id with --backend, e.g. ftc chat ft:gpt-4.1-mini:... 'hi' --backend openai")
        with _opened(store) as st:
            try:
                job = st.get_job(ref)
            except UsageError as e:
                if backend is None:
                    raise UsageError(e.message, hint="For a model id, name its backend: --backend openai|together.") from None
            if job is not None and not job.fine_tuned_model and job.provider_job_id and job.state == "succeeded":
                model = _backend(job.backend, on_retry).result(job.provider_job_id)
                if model:
                    job = st.update_state(job.id, job.state, fine_tuned_model=model)
    if job is not None:
        if not job.fine_tuned_model:
            hint = (f"Watch it with `ftc jobs watch {job.id}`." if not job.is_final
                    else f"It ended {job.state}" + (f": {job.error}" if job.error else "") + ".")
            raise UsageError(f"{job.id} has no fine-tuned model yet (it is {job.state})", hint=hint)
        name, model = job.backend, job.fine_tuned_model
    else:
        name, model = backend, ref  # type: ignore[assignment]
    be = _backend(name, on_retry)
    from .backends import check_ready

    check_ready(be)  # the API key too, before the request
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    text = be.chat(model, messages, **kw)
    return ChatReply(backend=getattr(be, "name", name), model=model, text=text, job_id=job.id if job else None)
