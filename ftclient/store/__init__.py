"""The crash-safe job store: one SQLite file that remembers every job ftc submitted.

A fine-tuning job costs money and runs for hours, so ftc must never create one twice and
never lose track of one, even when the process is killed half-way. The store gives that:

* **Write-ahead operations.** Before any network call that changes something at a
  provider the caller commits an operation in state ``intent``, marks it ``sent``, and
  settles it; what a dead process left open is found by :meth:`Store.pending_work` and is
  reconciled with the provider before retrying (:mod:`ftclient.store.operations`).
* **One worker per job.** :meth:`Store.claim` takes a job over only when its recorded
  worker (pid, host, process start time, heartbeat) is gone (:mod:`ftclient.store.procs`).
* **SQLite in WAL mode**, every write one short ``BEGIN IMMEDIATE`` transaction,
  ``synchronous=FULL`` (:mod:`ftclient.store.base`, :mod:`ftclient.store.db`).
* **No secrets.** Request and response bodies, errors and event texts go through
  :func:`ftclient.secrets.redact` before they are written.

The schema evolves by numbered migrations (:data:`MIGRATIONS`,
:mod:`ftclient.store.migrations`). See docs/jobs.md for the tables and the states.

The modules: :mod:`~ftclient.store.records` (the records and the vocabulary of states),
:mod:`~ftclient.store.migrations`, :mod:`~ftclient.store.procs` (which process works on a
job), :mod:`~ftclient.store.clock` (timestamps), :mod:`~ftclient.store.db` and
:mod:`~ftclient.store.base` (the connection), :mod:`~ftclient.store.errors`, the
:class:`Store`'s mixins :mod:`~ftclient.store.jobs`, :mod:`~ftclient.store.operations`,
:mod:`~ftclient.store.events`, :mod:`~ftclient.store.uploads`, :mod:`~ftclient.store.evals`,
and :mod:`~ftclient.store.failures` (an evaluation's failure reasons in a few lines).
"""

from __future__ import annotations

from ._store import Store, opened
from .db import BUSY_TIMEOUT_S
from .errors import DuplicateSubmission, StoreError, store_error
from .failures import MAX_FAILURE_REASONS, failure_reasons, format_failures
from .migrations import MIGRATIONS, migrate, schema_version
from .procs import HEARTBEAT_INTERVAL_S, HEARTBEAT_STALE_S, HOST, PID_REUSE_STALE_S, pid_running, process_start
from .records import (
    EVAL_STATES,
    FINAL_STATES,
    OP_KINDS,
    OP_STATES,
    OPEN_OP_STATES,
    STATES,
    UPLOAD_STATUSES,
    EvalResult,
    EvalRun,
    Event,
    Job,
    Operation,
    PendingWork,
    Upload,
)

__all__ = [
    "STATES",
    "FINAL_STATES",
    "OP_KINDS",
    "OP_STATES",
    "OPEN_OP_STATES",
    "UPLOAD_STATUSES",
    "Store",
    "opened",
    "Job",
    "Operation",
    "Upload",
    "Event",
    "PendingWork",
    "EvalRun",
    "EvalResult",
    "EVAL_STATES",
    "StoreError",
    "DuplicateSubmission",
    "store_error",
    "MIGRATIONS",
    "migrate",
    "schema_version",
    "failure_reasons",
    "format_failures",
    "MAX_FAILURE_REASONS",
    "HOST",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_STALE_S",
    "PID_REUSE_STALE_S",
    "BUSY_TIMEOUT_S",
    "pid_running",
    "process_start",
]
