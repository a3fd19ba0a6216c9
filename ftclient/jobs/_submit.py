"""Submitting a job: :func:`submit`.

Everything :func:`~ftclient.jobs.plan` checks happens first; then the job is recorded
and handed to ``backend.submit`` (write-ahead, resumable). When the provider quotes its
own price the budget applies to that figure too, and the caller's ``confirm`` is asked
about the :class:`Quote`. :func:`submit_job` is that hand-over, shared with
:func:`~ftclient.jobs.resume`: the store is kept truthful on every outcome.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..backends import JobState, available_backends, check_ready
from ..budget import check_budget, usable_usd
from ..errors import BudgetExceeded, FtcError, UsageError
from ..store import StoreError, opened
from ..submission import Declined, create_once
from ._common import Interrupted, backend_named
from ._plan import Plan, over, plan, usd

if TYPE_CHECKING:  # pragma: no cover
    from ..backends import Backend
    from ..spec import JobSpec
    from ..store import Job, Store

__all__ = ["Declined", "Quote", "submit", "submit_job"]


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


class _Confirm:
    """Wraps the caller's ``confirm``: shows both figures and applies the budget to the
    provider's figure before asking; remembers why it refused."""

    def __init__(self, estimate_usd: float | None, budget_usd: float | None, user: Callable[[Quote], bool] | None):
        self.estimate_usd, self.budget_usd, self.user = estimate_usd, budget_usd, user
        self.refused: FtcError | None = None
        self.quote: Quote | None = None

    def __call__(self, provider_estimate: Any) -> bool:
        raw = dict(provider_estimate) if isinstance(provider_estimate, Mapping) else {"value": provider_estimate}
        figure = usd(provider_estimate)
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
                    *over(q.provider_usd, self.budget_usd), ours),
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
            p.backend_obj = backend_named(p.backend, on_retry, ready=False)
        if not dry_run:
            check_ready(p.backend_obj)  # the SDK and the key, again: before the job is recorded
        budget = check_budget(budget, "--budget")
        if budget is not None and budget != p.budget_usd:
            p.budget_usd = budget
            if p.estimate_usd is not None and not usable_usd(p.estimate_usd):
                raise BudgetExceeded(f"ftc's estimate is not a usable price ({p.estimate_usd!r}); with a budget set, "
                                     "nothing was sent")
            if p.estimate_usd is not None and p.estimate_usd > budget:
                raise BudgetExceeded("the estimated cost ${} is above the budget ${}; nothing was sent".format(
                    *over(p.estimate_usd, budget)))
    else:
        if backend_name is None:
            raise UsageError("give a backend", hint="--backend " + "|".join(available_backends()))
        p = plan(spec_or_path, backend_name, budget=budget, on_retry=on_retry, today=today, require_ready=not dry_run)
    if dry_run:
        return p
    with opened(store) as st:
        spec = p.spec
        job = st.new_job(p.backend, spec.model_dump(mode="json"), model=p.model, estimate_usd=p.estimate_usd)
        submit_job(p.backend_obj, spec, job, st, budget=p.budget_usd, confirm=confirm, on_progress=on_progress)
        return st.get_job(job.id)


def submit_job(be: "Backend", spec: "JobSpec", job: "Job", st: "Store", *, budget: float | None,
                confirm: Callable | None, on_progress: Callable | None) -> "Job":
    """``backend.submit`` with the confirm wrapper, and the store kept truthful on every outcome."""
    gate = _Confirm(job.estimate_usd, budget, confirm)
    try:
        res = create_once(be, spec, job=job, store=st, on_progress=on_progress, confirm=gate)
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
