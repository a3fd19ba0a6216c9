"""Watching a job: :func:`watch` polls it with backoff until it ends, storing its state
and events; :func:`refresh` is one poll.

Polling budget (:class:`PollPolicy` defaults): the first poll is immediate, then the
wait grows 5 s, 7.5 s, 11 s, 17 s, 25 s, 30 s, 30 s... and goes back to 5 s whenever the
job's state changes, so a change is seen within 30 s and a quiet job-hour costs about
123 status requests plus one events request every 4th poll (32).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..backends import JobState
from ..errors import FtcError, UsageError
from ..secrets import redact
from ..store import StoreError, opened
from ._common import Interrupted, backend_named

if TYPE_CHECKING:  # pragma: no cover
    from ..backends import Backend, JobEvent, JobStatus
    from ..store import Job, Store

__all__ = ["PollPolicy", "WatchUpdate", "watch", "refresh", "apply_status", "fetch_events"]

log = logging.getLogger("ftclient.jobs")


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


def _redact(text: Any) -> str | None:
    if text is None:
        return None
    return redact(text)


def _status_key(s: "JobStatus") -> tuple:
    return (getattr(s.state, "value", s.state), s.provider_state)


def apply_status(st: "Store", job: "Job", s: "JobStatus", be: "Backend") -> "Job":
    """Record a status in the store (state, progress, fine-tuned model, the provider's error)."""
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


def fetch_events(st: "Store", job: "Job", be: "Backend") -> list["JobEvent"]:
    evs = list(be.events(job.provider_job_id, after=job.last_event_cursor) or [])
    if not evs:
        return []
    cursor = str(getattr(evs[-1], "id", None) or job.last_event_cursor or "") or None
    st.add_events(job.id, evs, cursor=cursor)
    return evs


def refresh(job_ref: str, *, store: "Store | None" = None, backend: "Backend | None" = None,
            on_retry: Callable | None = None, with_events: bool = True) -> tuple["Job", "JobStatus | None"]:
    """One status request (and one events request) for a job; stores what it learns."""
    with opened(store) as st:
        job = st.get_job(job_ref)
        if not job.provider_job_id:
            return job, None
        be = backend if backend is not None else backend_named(job.backend, on_retry)
        s = be.status(job.provider_job_id)
        job = apply_status(st, job, s, be)
        if with_events:
            fetch_events(st, job, be)
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
    from . import DEFAULT_POLL  # the package's, read at each call: callers and tests replace it there

    pol = poll if poll is not None else DEFAULT_POLL
    with opened(store) as st:
        job = st.get_job(job_ref)
        if not job.provider_job_id:
            hint = (f"It was never sent to {job.backend}." if job.is_final
                    else f"Finish submitting it with `ftc jobs resume {job.id}`.")
            raise UsageError(f"{job.id} has no job at {job.backend} yet", hint=hint)
        be = backend if backend is not None else backend_named(job.backend, on_retry)
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
                job = apply_status(st, job, s, be)
                new: list[Any] = []
                final = bool(getattr(s, "final", False))
                if changed or final or (pol.events_every and polls % pol.events_every == 0):
                    new = fetch_events(st, job, be)
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
