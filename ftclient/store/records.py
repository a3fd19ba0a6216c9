"""The store's records: one frozen dataclass per row of a table (:class:`Job`,
:class:`Operation`, :class:`Upload`, :class:`Event`, :class:`EvalRun`, :class:`EvalResult`,
and :class:`PendingWork`, what a dead process left unfinished), the vocabulary of their
states and kinds, and the reading of a row into a record that never crashes on a bad one.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ..backends import JobState

# --------------------------------------------------------------------------------------------
# vocabulary

#: The neutral job states: the values of :class:`ftclient.backends.JobState`, in its order.
STATES: tuple[str, ...] = tuple(s.value for s in JobState)
#: States a job never leaves (except with ``update_state(..., force=True)``): the values of
#: ``ftclient.backends.FINAL_STATES``.
FINAL_STATES: tuple[str, ...] = tuple(s.value for s in JobState if s.final)

#: What an operation does at the provider.
OP_KINDS: tuple[str, ...] = ("upload", "create", "cancel", "download")
#: intent: committed before the call; sent: the request is (maybe) out; done/failed: settled;
#: unknown: the call ended without a definite answer (timeout, reset) -- reconcile first.
OP_STATES: tuple[str, ...] = ("intent", "sent", "done", "failed", "unknown")
OPEN_OP_STATES: tuple[str, ...] = ("intent", "sent", "unknown")

UPLOAD_STATUSES: tuple[str, ...] = ("uploading", "uploaded", "processed", "failed", "deleted")


def job_state(value: Any) -> str:
    """A job state's text (from a :class:`~ftclient.backends.JobState` or its value);
    ``ValueError`` for anything else."""
    s = getattr(value, "value", value)
    if s not in STATES:
        raise ValueError(f"not a job state: {value!r} (one of {', '.join(STATES)})")
    return s


# --------------------------------------------------------------------------------------------
# records


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):  # a hand-edited column: the text as it is
        return text


def _coerce(annotation: str, value: Any) -> Any:
    """A column's value as its field's type, whatever a hand edit (or another program) put
    in the row: text for a number column is None, bytes are decoded, a NaN or infinite
    figure is None -- so reading the store never crashes on one bad row."""
    optional = annotation.endswith("| None")
    base = annotation.split("|")[0].strip()
    if value is None:
        return None if optional else {"str": "", "int": 0}.get(base)
    if base == "str":
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "replace")
        return value if isinstance(value, str) else str(value)
    if base in ("int", "float"):
        v: Any = value
        if isinstance(v, (bytes, bytearray, memoryview)):
            v = bytes(v).decode("utf-8", "replace")
        if isinstance(v, str):
            try:
                v = float(v.strip()) if base == "float" else int(v.strip())
            except ValueError:
                v = None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and v != v) \
                or v in (float("inf"), float("-inf")):
            return None if optional else 0
        if base == "int" and isinstance(v, float):
            v = int(v) if v.is_integer() else None
        return float(v) if base == "float" else v
    return value


def from_row(cls: Any, row: Mapping[str, Any]) -> Any:
    """A record dataclass from a row, each column coerced to its field's type (:func:`_coerce`);
    columns the dataclass does not know (a newer schema) are left out."""
    known = {f.name: f.type for f in dataclasses.fields(cls)}
    d = dict(row)
    return cls(**{k: _coerce(str(known[k]), v) for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Job:
    id: str
    backend: str
    provider_job_id: str | None
    state: str
    client_token: str
    spec_json: str
    model: str | None
    created_at: str
    updated_at: str
    finished_at: str | None
    fine_tuned_model: str | None
    error: str | None
    estimate_usd: float | None
    last_event_cursor: str | None
    attempts: int
    pid: int | None = None
    worker_host: str | None = None
    worker_start: str | None = None
    heartbeat_at: str | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    trained_tokens: int | None = None
    cost_so_far_usd: float | None = None

    @property
    def spec(self) -> Any:
        """The job's spec, parsed from ``spec_json``."""
        return _loads(self.spec_json)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec
        del d["spec_json"]
        return d


@dataclass(frozen=True)
class Operation:
    id: int
    job_id: str | None
    kind: str
    client_token: str | None
    state: str
    request_json: str | None
    response_json: str | None
    error: str | None
    started_at: str
    finished_at: str | None
    pid: int | None = None
    worker_host: str | None = None
    worker_start: str | None = None
    heartbeat_at: str | None = None

    @property
    def request(self) -> Any:
        return _loads(self.request_json)

    @property
    def response(self) -> Any:
        return _loads(self.response_json)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_OP_STATES

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["request"], d["response"] = self.request, self.response
        del d["request_json"], d["response_json"]
        return d


@dataclass(frozen=True)
class Upload:
    id: int
    provider: str
    sha256: str
    purpose: str
    bytes: int
    filename: str | None
    provider_file_id: str | None
    status: str
    created_at: str
    verified_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    id: int
    job_id: str
    provider_event_id: str
    created_at: str
    level: str
    message: str
    data_json: str | None

    @property
    def data(self) -> Any:
        return _loads(self.data_json)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"] = self.data
        del d["data_json"]
        return d


@dataclass(frozen=True)
class PendingWork:
    """Work a dead (or vanished) process left unfinished, grouped by job.

    ``operations`` are the job's open operations (intent/sent/unknown): reconcile each with
    the provider before doing anything else. ``job`` is None for an operation not tied to a
    job (an upload).
    """

    job: Job | None
    operations: list[Operation] = field(default_factory=list)
    reason: str = ""

    @property
    def job_id(self) -> str | None:
        return self.job.id if self.job else (self.operations[0].job_id if self.operations else None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job.to_dict() if self.job else None,
            "operations": [o.to_dict() for o in self.operations],
            "reason": self.reason,
        }


#: The states of an evaluation run: ``complete`` (every example answered), ``partial``
#: (it ran to the end but some examples failed; the same ``ftc eval`` command retries
#: them), ``interrupted`` (stopped before the end; the same command resumes it).
EVAL_STATES: tuple[str, ...] = ("running", "complete", "partial", "interrupted")


@dataclass(frozen=True)
class EvalRun:
    """One evaluation of one model on one data file with fixed generation parameters.

    ``id`` is derived from (canonical model ref, data sha256, generation params), so the
    same evaluation run again finds this record and resumes it. ``summary`` is the last
    summary written by :meth:`Store.finish_eval_run` (None before the first one).
    """

    id: str
    model_ref: str
    data_path: str
    data_sha256: str
    params: dict
    state: str
    created_at: str
    updated_at: str
    summary: dict | None = None
    pid: int | None = None
    worker_host: str | None = None
    worker_start: str | None = None
    sessions: int = 0
    """How many times an ``ftc eval`` (re)started this run (``--fresh`` counts anew)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalResult:
    """The stored answer for one example of an evaluation run (``error`` set when it failed)."""

    run_id: str
    example_key: str
    idx: int
    output: str | None
    latency_s: float | None
    tokens_in: int | None
    tokens_out: int | None
    error: str | None
    created_at: str
    session: int | None = None
    """Which session of the run answered it (1, 2, ...: each ``ftc eval`` of the run is one);
    None for answers stored before sessions were counted."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def eval_run_from_row(row: sqlite3.Row) -> EvalRun:
    """An :class:`EvalRun` from an ``eval_runs`` row (its JSON columns parsed)."""
    d = dict(row)
    params = _loads(d.pop("params_json"))
    summary = _loads(d.pop("summary_json"))
    d = {k: _coerce(str(t), d[k]) for k, t in EvalRun.__annotations__.items() if k in d}
    return EvalRun(params=params if isinstance(params, dict) else {}, summary=summary if isinstance(summary, dict) else None,
                   **d)
