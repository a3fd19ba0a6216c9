"""What Fireworks answers, as ftc's neutral records: job states, status and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from ftclient.backends import JobEvent, JobState, JobStatus, map_state, to_datetime

from .wire import PROVIDER, split_name

__all__ = [
    "FIREWORKS_STATES",
    "FireworksJobStatus",
    "state_of",
    "status_message",
    "output_model",
    "job_status",
    "job_events",
]

#: Fireworks' job states (``JobState`` of its API) onto the neutral ones. ``CANCELLING``,
#: ``WRITING_RESULTS`` and ``PAUSED`` are not final (the job may still hold GPUs or resume),
#: so they read as ``running``; ``provider_state`` says which. ``EARLY_STOPPED`` ended with a
#: model (training stopped when the evaluation loss stopped improving).
FIREWORKS_STATES: dict[str, JobState] = {
    "JOB_STATE_UNSPECIFIED": JobState.PENDING,
    "JOB_STATE_CREATING": JobState.PENDING,
    "JOB_STATE_CREATING_INPUT_DATASET": JobState.PENDING,
    "JOB_STATE_VALIDATING": JobState.VALIDATING_FILES,
    "JOB_STATE_PENDING": JobState.QUEUED,
    "JOB_STATE_RE_QUEUEING": JobState.QUEUED,
    "JOB_STATE_IDLE": JobState.QUEUED,
    "JOB_STATE_RUNNING": JobState.RUNNING,
    "JOB_STATE_WRITING_RESULTS": JobState.RUNNING,
    "JOB_STATE_CANCELLING": JobState.RUNNING,
    "JOB_STATE_PAUSED": JobState.RUNNING,
    "JOB_STATE_COMPLETED": JobState.SUCCEEDED,
    "JOB_STATE_EARLY_STOPPED": JobState.SUCCEEDED,
    "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_EXPIRED": JobState.FAILED,
    "JOB_STATE_CANCELLED": JobState.CANCELLED,
    "JOB_STATE_DELETING": JobState.CANCELLED,
    "JOB_STATE_DELETING_CLEANING_UP": JobState.CANCELLED,
}

@dataclass
class FireworksJobStatus(JobStatus):
    """:class:`JobStatus` plus how the fine-tuned model is served."""

    serving_note: str | None = None
    """Set when the model needs a dedicated deployment to be called (LoRA models on Fireworks)."""


def state_of(job: Mapping[str, Any]) -> JobState:
    return map_state(job.get("state") or "JOB_STATE_UNSPECIFIED", FIREWORKS_STATES, provider=PROVIDER)


def status_message(job: Mapping[str, Any]) -> str | None:
    st = job.get("status")
    if isinstance(st, Mapping):
        msg = str(st.get("message") or "").strip()
        code = str(st.get("code") or "").strip()
        if msg and code and code != "OK":
            return f"{msg} ({code})"
        return msg or (code if code and code != "OK" else None)
    return None


def output_model(job: Mapping[str, Any]) -> str | None:
    out = job.get("outputModel")
    if not out and isinstance(job.get("trainingConfig"), Mapping):
        out = job["trainingConfig"].get("outputModel")
    if out and not str(out).startswith("accounts/"):
        try:
            account = split_name(str(job.get("name")))[0]
        except ValueError:
            return str(out)
        return f"accounts/{account}/models/{out}"
    return str(out) if out else None


def job_status(job: Mapping[str, Any], *, serving_note: str | None = None) -> FireworksJobStatus:
    """A Fireworks job (dict, as ``GET .../supervisedFineTuningJobs/{id}`` sends it) as a neutral status."""
    provider_state = job.get("state")
    state = state_of(job)
    prog = job.get("jobProgress") if isinstance(job.get("jobProgress"), Mapping) else {}
    percent = prog.get("percent")
    step = int(percent) if isinstance(percent, (int, float)) and not isinstance(percent, bool) else None
    if state is JobState.SUCCEEDED:
        step = 100
    error = None
    if state is JobState.FAILED:
        error = status_message(job) or f"Fireworks reported the job as {provider_state!r} without a reason"
    tokens = prog.get("inputTokens")
    return FireworksJobStatus(
        state=state,
        provider_state=str(provider_state) if provider_state is not None else None,
        fine_tuned_model=output_model(job) if state is JobState.SUCCEEDED else None,
        error=error,
        trained_tokens=int(tokens) if isinstance(tokens, int) and state is JobState.SUCCEEDED else None,
        step=step,
        total_steps=100 if step is not None else None,
        loss=None,
        eta_seconds=None,
        raw=dict(job),
        serving_note=serving_note if state is JobState.SUCCEEDED else None,
    )


def job_events(job: Mapping[str, Any], after: str | None = None) -> list[JobEvent]:
    """The job's own record as events, oldest first (Fireworks has no event list): created,
    its current state (with the status message and progress), completed. ``after`` (an event
    id shown before) leaves out what was shown: a state event comes again only when the state
    or its progress changed."""
    evs: list[JobEvent] = []

    def when(key: str) -> datetime | None:
        try:
            return to_datetime(job.get(key))
        except ValueError:
            return None

    created, done = when("createTime"), when("completedTime")
    if created is not None:
        evs.append(JobEvent(id="fw-created", created_at=created, level="info",
                            message=f"job created ({job.get('displayName') or job.get('name') or ''})".strip()))
    state = str(job.get("state") or "")
    if state:
        neutral = state_of(job)
        msg = f"state {state.removeprefix('JOB_STATE_').lower()}"
        detail = status_message(job)
        if detail:
            msg += f": {detail}"
        prog = job.get("jobProgress") if isinstance(job.get("jobProgress"), Mapping) else {}
        data = {k: prog[k] for k in ("percent", "epoch", "inputTokens") if prog.get(k) is not None}
        level = "error" if neutral is JobState.FAILED else "info"
        at = when("updateTime") or created
        if at is not None and done is not None and at > done:
            at = done  # the record may be touched after the end: keep the events in time order
        evs.append(JobEvent(id=f"fw-{state.lower()}-{prog.get('percent', '')}", created_at=at,
                            level=level, message=msg, data=data))
    if done is not None:
        out, final = output_model(job), state_of(job)
        evs.append(JobEvent(id="fw-completed", created_at=done, level="error" if final is JobState.FAILED else "info",
                            message="job ended" + (f": model {out}" if out and final is JobState.SUCCEEDED else "")))
    if after is not None:
        # A snapshot, not a log: the state event's id changes with the state (and its progress).
        # After the creation event comes everything else; after an older state event, the
        # current state (if it is another) and the end; after the end, nothing.
        if after == "fw-completed":
            return []
        if after.startswith("fw-job_state"):
            return [e for e in evs if e.id != "fw-created" and e.id != after]
        if after == "fw-created":
            return [e for e in evs if e.id != "fw-created"]
    return evs
