"""Resuming after a crash: :func:`resume` finishes what killed processes left.

Each job is claimed first (one live process per job); a submission that never got
its answer is reconciled and submitted again (the backend never creates a second
job), an open cancel is sent again, an interrupted download dropped; then what still
runs is watched (or refreshed once).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..backends import readiness
from ..budget import check_budget
from ..errors import FtcError, UsageError
from ..store import FINAL_STATES, StoreError, opened
from ._common import Interrupted, backend_named
from ._manage import cancel_provider
from ._submit import Quote, submit_job
from ._watch import PollPolicy, WatchUpdate, refresh, watch

if TYPE_CHECKING:  # pragma: no cover
    from ..backends import Backend
    from ..spec import JobSpec
    from ..store import Job, Store

__all__ = ["ResumeOutcome", "resume"]


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
    outcomes: list[ResumeOutcome] = []
    cache: dict[str, Any] = dict(backends or {})

    def backend_for(name: str):
        if name not in cache:
            cache[name] = backend_named(name, on_retry, ready=False)  # checked below, before anything is touched
        return cache[name]

    def done(o: ResumeOutcome) -> None:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)

    if reopen and job_ref is None:
        raise UsageError("--reopen continues one cancelled job: give its id", hint="e.g. ftc jobs resume JOB --reopen")
    with opened(store) as st:
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
                        job = submit_job(be, spec, job, st, budget=limit, confirm=confirm, on_progress=on_progress)
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
                            job = cancel_provider(st, be, st.get_job(job_id), reuse_op=op)
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


def _spec_of(job: "Job") -> "JobSpec":
    from ..spec import parse_spec  # pydantic: only when a spec is read

    return parse_spec(job.spec, source=f"the spec stored with {job.id}")


def _check_resumable(st: "Store", items: list, backend_for: Callable[[str], Any], *, reopen: bool) -> None:
    """Before resume touches any job: every backend it will use can work here (its SDK or
    training stack installed, its API key set); else the ConfigError (exit 2) with the
    install line or the key's variable, and every job left as it was."""
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
    s = fn(job.provider_job_id)
    state = getattr(s.state, "value", s.state)
    return st.update_state(job.id, "queued" if state in FINAL_STATES else state, force=True, error=None)
