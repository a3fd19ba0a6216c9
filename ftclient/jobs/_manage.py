"""Managing jobs: :func:`cancel`, and the queries :func:`list_jobs`, :func:`show`,
:func:`events`, :func:`checkpoints`, and :func:`download` of a job's model."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import FtcError, UsageError
from ..paths import job_dir
from ..store import opened
from ._common import backend_named
from ._watch import apply_status, fetch_events, refresh

if TYPE_CHECKING:  # pragma: no cover
    from ..backends import Backend
    from ..store import Job, Store

__all__ = ["JobView", "cancel", "cancel_provider", "list_jobs", "show", "events", "checkpoints", "download"]


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


def cancel_provider(st: "Store", be: "Backend", job: "Job", reuse_op: Any = None) -> "Job":
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
                return apply_status(st, st.get_job(job.id), be.status(job.provider_job_id), be)
        raise
    st.finish_operation(op.id, s.to_dict() if hasattr(s, "to_dict") else None)
    return apply_status(st, st.get_job(job.id), s, be)


def cancel(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None,
           on_retry: Callable | None = None) -> "Job":
    """Ask the provider to stop a job; returns the store's record afterwards.

    A job never sent is marked cancelled here. A job whose create may be in flight is
    reconciled first (by its client token); one another live process is still
    submitting is refused (stop that process first). A final job is returned as it is.
    """
    with opened(store) as st:
        job = st.get_job(job_ref)
        if job.is_final:
            return job
        # a job never sent (no create out) is cancelled here: its backend's SDK is not needed
        asks = bool(job.provider_job_id) or any(o.is_open for o in st.operations(job.id, "create"))
        be = backend if backend is not None else backend_named(job.backend, on_retry, ready=asks)
        if job.provider_job_id:
            return cancel_provider(st, be, job)
        if not st.claim(job.id):
            raise UsageError(f"{job.id} is being submitted by process {job.pid} on {job.worker_host}",
                             hint="Stop that process (Ctrl-C) first, or cancel once it has been created.")
        try:
            for op in st.operations(job.id, "create"):
                if op.is_open:
                    found = be.find_by_client_token(job.client_token)
                    if found:
                        st.finish_operation(op.id, {"id": found, "reconciled": True}, provider_job_id=found)
                        return cancel_provider(st, be, st.get_job(job.id))
                    st.fail_operation(op.id, "not found at the provider when cancelling", ambiguous=False)
            return st.update_state(job.id, "cancelled", error="cancelled before it was sent to the provider")
        finally:
            st.release(job.id)


def list_jobs(*, store: "Store | None" = None, backend: str | None = None, states: Sequence[str] | None = None,
              limit: int | None = 50) -> list["Job"]:
    """The store's jobs, newest first (no network)."""
    with opened(store) as st:
        return st.list_jobs(backend=backend, states=states, limit=limit)


def show(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None, refresh_status: bool = True,
         on_retry: Callable | None = None, last_events: int = 10) -> JobView:
    """A job: the store's record, a fresh status from the backend (unless the job is
    final or ``refresh_status`` is False) and its last stored events. A failed refresh
    (no key, no network) is reported in ``refresh_error``, not raised."""
    with opened(store) as st:
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
    with opened(store) as st:
        job = st.get_job(job_ref)
        if refresh_events and job.provider_job_id:
            be = backend if backend is not None else backend_named(job.backend, on_retry)
            fetch_events(st, job, be)
        evs = st.list_events(job.id)
        return evs[-limit:] if limit else evs


def checkpoints(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None,
                on_retry: Callable | None = None) -> list[Any]:
    """The checkpoints the backend keeps for a job (empty when it has none or was never sent)."""
    with opened(store) as st:
        job = st.get_job(job_ref)
        if not job.provider_job_id:
            return []
        be = backend if backend is not None else backend_named(job.backend, on_retry)
        return list(be.checkpoints(job.provider_job_id) or [])


def download(job_ref: str, dest: str | os.PathLike | None = None, *, checkpoint: str = "adapter",
             step: int | None = None, store: "Store | None" = None, backend: "Backend | None" = None,
             on_progress: Callable | None = None, on_retry: Callable | None = None) -> Path:
    """Download a job's model (``checkpoint``: adapter | merged) or the checkpoint at
    ``step``, where its backend allows it (Together does; OpenAI does not). Recorded as a
    ``download`` operation; the file appears whole or not at all. Default destination:
    the job's directory under FTC_HOME."""
    with opened(store) as st:
        job = st.get_job(job_ref)
        if not job.provider_job_id:
            raise UsageError(f"{job.id} was never created at {job.backend}: there is nothing to download")
        if step is None and job.state != "succeeded":
            raise UsageError(f"{job.id} is {job.state}: its model can be downloaded once it succeeded",
                             hint="Give --step N for one of its checkpoints (`ftc jobs checkpoints`).")
        be = backend if backend is not None else backend_named(job.backend, on_retry)
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
