"""Write-ahead operations and the one worker per job.

* **Write-ahead operations.** Before any network call that changes something at a
  provider (upload, create, cancel, download) the caller commits an ``operations`` row in
  state ``intent`` (:meth:`~ftclient.store.Store.begin_operation`), marks it ``sent`` when the
  request leaves (:meth:`~ftclient.store.Store.mark_sent`), and settles it as ``done``,
  ``failed`` or ``unknown`` (:meth:`~ftclient.store.Store.finish_operation`,
  :meth:`~ftclient.store.Store.fail_operation`). A row left in ``intent``/``sent``/``unknown``
  by a dead process is found by :meth:`~ftclient.store.Store.pending_work` and must be
  reconciled with the provider (by the job's ``client_token``) before retrying. A second
  ``create`` for a job is refused while an earlier one is open or done.
* **One worker per job.** A job records the pid (and host, and process start time) of the
  process working on it and a heartbeat; :meth:`~ftclient.store.Store.claim` takes a job over
  atomically only when that worker is gone, so two ``ftc`` processes never resume the same job.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from ..errors import UsageError
from ..secrets import redact, redact_json
from .clock import now_iso
from .errors import DuplicateSubmission, StoreError
from .jobs import JobsMixin
from .procs import HOST
from .records import FINAL_STATES, OP_KINDS, OPEN_OP_STATES, Job, Operation, PendingWork, from_row, job_state


class OperationsMixin(JobsMixin):
    """The workers and the write-ahead operations of :class:`ftclient.store.Store`."""

    # -- workers -----------------------------------------------------------------------------

    def claim(self, job_id: str) -> bool:
        """Make this process the job's worker, unless another live process is. True if ours.

        Atomic: runs in one BEGIN IMMEDIATE transaction and updates only the row as it was
        read, so of two processes claiming at once exactly one wins. Open operations of a
        dead worker on this job move to this process (it is now the one to reconcile them).
        """
        pid, host, start, now = self._me()
        with self._write() as c:
            row = c.execute(
                "SELECT pid, worker_host, worker_start, heartbeat_at FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise UsageError(f"no job {job_id!r} in the store")
            mine = row["pid"] == pid and row["worker_host"] == host and row["worker_start"] == start
            if not mine and self._alive(row["pid"], row["worker_host"], row["worker_start"], row["heartbeat_at"]):
                return False
            cur = c.execute(
                "UPDATE jobs SET pid = ?, worker_host = ?, worker_start = ?, heartbeat_at = ?"
                " WHERE id = ? AND pid IS ? AND worker_host IS ? AND heartbeat_at IS ?",
                (pid, host, start, now, job_id, row["pid"], row["worker_host"], row["heartbeat_at"]),
            )
            if cur.rowcount != 1:  # pragma: no cover - impossible under the write lock
                return False
            c.execute(
                "UPDATE operations SET pid = ?, worker_host = ?, worker_start = ?, heartbeat_at = ?"
                " WHERE job_id = ? AND state IN ('intent', 'sent', 'unknown')",
                (pid, host, start, now, job_id),
            )
            return True

    def release(self, job_id: str) -> None:
        """Stop being the job's worker (only if this process is)."""
        pid = os.getpid()
        with self._write() as c:
            c.execute(
                "UPDATE jobs SET pid = NULL, worker_host = NULL, worker_start = NULL WHERE id = ? AND pid = ? AND worker_host = ?",
                (job_id, pid, HOST),
            )

    def heartbeat(self, job_id: str | None = None) -> None:
        """Tell other processes this one is alive: refreshes the heartbeat of the jobs and open
        operations this process works on (only ``job_id``'s when given). Call it at least
        every :data:`HEARTBEAT_INTERVAL_S` seconds during long work."""
        pid, host, _, now = self._me()
        extra, params = ("", ()) if job_id is None else (" AND job_id = ?", (job_id,))
        with self._write() as c:
            c.execute(
                "UPDATE jobs SET heartbeat_at = ? WHERE pid = ? AND worker_host = ?"
                + (" AND id = ?" if job_id else ""),
                (now, pid, host, *params),
            )
            c.execute(
                "UPDATE operations SET heartbeat_at = ? WHERE pid = ? AND worker_host = ?"
                " AND state IN ('intent', 'sent', 'unknown')" + extra,
                (now, pid, host, *params),
            )

    def pending_work(self) -> list[PendingWork]:
        """What killed or vanished processes left unfinished, oldest first.

        * open operations (intent, sent, unknown) whose worker is gone: reconcile with the
          provider by the client token before retrying;
        * jobs not in a final state that no live process works on: resume watching them
          (or, for ``pending`` with no operation, submit them).
        """
        ops = [from_row(Operation, r) for r in self._read(
            "SELECT * FROM operations WHERE state IN ('intent', 'sent', 'unknown') ORDER BY id"
        )]
        final = ", ".join(f"'{s}'" for s in FINAL_STATES)
        jobs = [from_row(Job, r) for r in self._read(f"SELECT * FROM jobs WHERE state NOT IN ({final}) ORDER BY created_at, id")]
        by_job: dict[str | None, list[Operation]] = {}
        for op in ops:
            if not self._alive(op.pid, op.worker_host, op.worker_start, op.heartbeat_at):
                by_job.setdefault(op.job_id, []).append(op)
        out: list[PendingWork] = []
        seen: set[str] = set()
        for job in jobs:
            job_ops = by_job.get(job.id, [])
            if self._alive(job.pid, job.worker_host, job.worker_start, job.heartbeat_at) and not job_ops:
                continue
            seen.add(job.id)
            out.append(PendingWork(job=job, operations=job_ops, reason=self._reason(job, job_ops)))
        for job_id, job_ops in by_job.items():
            if job_id is None:
                for op in job_ops:
                    out.append(PendingWork(job=None, operations=[op], reason=_op_reason(op)))
            elif job_id not in seen:  # a job in a final state with an open operation (e.g. a download)
                job = from_row(Job, self._job_row(job_id))
                out.append(PendingWork(job=job, operations=job_ops, reason=self._reason(job, job_ops)))
        return out

    def _reason(self, job: Job, ops: list[Operation]) -> str:
        if ops:
            return "; ".join(_op_reason(o) for o in ops)
        if job.state == "submit_unknown":
            return "the create call's outcome is unknown: reconcile with the provider before resubmitting"
        if job.state == "pending" and not job.provider_job_id:
            return "created but never submitted"
        if job.pid is not None:
            return f"its worker (pid {job.pid} on {job.worker_host}) is gone; resume watching it"
        return "no process is watching it; resume watching it"

    # -- operations (the write-ahead log) ------------------------------------------------------

    def begin_operation(
        self,
        job_id: str | None,
        kind: str,
        request: Any = None,
        *,
        client_token: str | None = None,
    ) -> Operation:
        """Commit the intent to call the provider, BEFORE the call; returns the operation.

        ``request`` (JSON-able, redacted before it is written) is what will be sent, for the
        record. A ``create`` uses the job's ``client_token`` unless given, counts an attempt,
        and is refused (:class:`DuplicateSubmission`) when the job already has a provider id,
        or an earlier create is open (intent/sent/unknown) or done, or another live process
        works on the job. To retry after an ambiguous failure, reconcile first and settle the
        earlier operation (``finish_operation`` if found, ``fail_operation(ambiguous=False)``
        if not).
        """
        if kind not in OP_KINDS:
            raise ValueError(f"not an operation kind: {kind!r} (one of {', '.join(OP_KINDS)})")
        req = None if request is None else redact_json(request)
        pid, host, start, now = self._me()
        with self._write() as c:
            if job_id is not None:
                job = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if job is None:
                    raise UsageError(f"no job {job_id!r} in the store")
                if kind == "create":
                    if job["provider_job_id"]:
                        raise DuplicateSubmission(
                            f"{job_id} was already created at the provider as {job['provider_job_id']}",
                            hint=f"Watch it with `ftc jobs watch {job_id}`.",
                        )
                    prev = c.execute(
                        "SELECT id, state FROM operations WHERE job_id = ? AND kind = 'create'"
                        " AND state IN ('intent', 'sent', 'unknown', 'done') ORDER BY id DESC LIMIT 1",
                        (job_id,),
                    ).fetchone()
                    if prev is not None:
                        raise DuplicateSubmission(
                            f"{job_id}: an earlier create (operation {prev['id']}) is {prev['state']}; "
                            "sending another could create the job twice",
                            hint="Reconcile with the provider first (`ftc jobs resume`).",
                        )
                    mine = job["pid"] == pid and job["worker_host"] == host
                    if not mine and self._alive(job["pid"], job["worker_host"], job["worker_start"], job["heartbeat_at"]):
                        raise DuplicateSubmission(
                            f"{job_id} is being worked on by process {job['pid']} on {job['worker_host']}",
                            hint="Wait for it, or stop that process first.",
                        )
                    client_token = client_token or job["client_token"]
                    c.execute(
                        "UPDATE jobs SET attempts = attempts + 1, pid = ?, worker_host = ?, worker_start = ?,"
                        " heartbeat_at = ?, updated_at = ? WHERE id = ?",
                        (pid, host, start, now, now, job_id),
                    )
            elif kind == "create":
                raise ValueError("a create operation needs a job")
            cur = c.execute(
                "INSERT INTO operations (job_id, kind, client_token, state, request_json, started_at,"
                " pid, worker_host, worker_start, heartbeat_at) VALUES (?, ?, ?, 'intent', ?, ?, ?, ?, ?, ?)",
                (job_id, kind, client_token, req, now, pid, host, start, now),
            )
            op_id = cur.lastrowid
        return self.get_operation(op_id)

    def get_operation(self, op_id: int) -> Operation:
        rows = self._read("SELECT * FROM operations WHERE id = ?", (op_id,))
        if not rows:
            raise UsageError(f"no operation {op_id} in the store")
        return from_row(Operation, rows[0])

    def operations(self, job_id: str, kind: str | None = None) -> list[Operation]:
        """A job's operations, oldest first."""
        sql, params = "SELECT * FROM operations WHERE job_id = ?", [job_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [from_row(Operation, r) for r in self._read(sql + " ORDER BY id", params)]

    def _transition(self, c: sqlite3.Connection, op_id: int, allowed: tuple[str, ...], new: str) -> sqlite3.Row:
        row = c.execute("SELECT * FROM operations WHERE id = ?", (op_id,)).fetchone()
        if row is None:
            raise UsageError(f"no operation {op_id} in the store")
        if row["state"] not in allowed:
            raise StoreError(f"operation {op_id} is {row['state']}; it cannot become {new}")
        return row

    def mark_sent(self, op_id: int) -> Operation:
        """The request is about to leave / has left: from here on its effect is uncertain."""
        now = now_iso()
        with self._write() as c:
            self._transition(c, op_id, ("intent",), "sent")
            c.execute("UPDATE operations SET state = 'sent', heartbeat_at = ? WHERE id = ?", (now, op_id))
        return self.get_operation(op_id)

    def finish_operation(
        self,
        op_id: int,
        response: Any = None,
        *,
        provider_job_id: str | None = None,
        state: Any = None,
    ) -> Operation:
        """The call succeeded (or reconciliation found its effect): record the response.

        For a ``create``, ``provider_job_id`` is recorded on the job in the same transaction
        (so the job is never done-but-untracked), and the job moves to ``state`` -- by default
        ``queued`` when it was ``pending`` or ``submit_unknown``.
        """
        resp = None if response is None else redact_json(response)
        st = None if state is None else job_state(state)
        now = now_iso()
        with self._write() as c:
            row = self._transition(c, op_id, OPEN_OP_STATES, "done")
            c.execute(
                "UPDATE operations SET state = 'done', response_json = ?, error = NULL, finished_at = ? WHERE id = ?",
                (resp, now, op_id),
            )
            job_id = row["job_id"]
            if job_id is not None:
                if provider_job_id is not None:
                    self._set_provider_job(c, job_id, provider_job_id)
                cur_state = c.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
                if st is None and row["kind"] == "create" and cur_state in ("pending", "submit_unknown"):
                    st = "queued"
                if st is not None and cur_state not in FINAL_STATES:
                    c.execute(
                        "UPDATE jobs SET state = ?, error = NULL, updated_at = ? WHERE id = ?", (st, now, job_id)
                    )
        return self.get_operation(op_id)

    def fail_operation(self, op_id: int, error: Any, *, ambiguous: bool) -> Operation:
        """The call failed. ``ambiguous``: it may have taken effect (timeout, connection reset
        after sending) -- the operation becomes ``unknown`` and, for a create, the job
        ``submit_unknown``; reconcile before retrying. Otherwise it definitely did not take
        effect: ``failed`` (the job's state is left to the caller; its ``error`` is set)."""
        msg = redact(f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error)
        now = now_iso()
        new = "unknown" if ambiguous else "failed"
        with self._write() as c:
            row = self._transition(c, op_id, OPEN_OP_STATES, new)
            c.execute(
                "UPDATE operations SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                (new, msg, None if ambiguous else now, op_id),
            )
            if row["job_id"] is not None and row["kind"] == "create":
                final = ", ".join(f"'{s}'" for s in FINAL_STATES)
                if ambiguous:
                    c.execute(
                        f"UPDATE jobs SET state = 'submit_unknown', error = ?, updated_at = ? WHERE id = ? AND state NOT IN ({final})",
                        (msg, now, row["job_id"]),
                    )
                else:
                    c.execute(
                        f"UPDATE jobs SET error = ?, updated_at = ?, state = CASE WHEN state = 'submit_unknown' THEN 'pending' ELSE state END"
                        f" WHERE id = ? AND state NOT IN ({final})",
                        (msg, now, row["job_id"]),
                    )
        return self.get_operation(op_id)


def _op_reason(op: Operation) -> str:
    where = f"job {op.job_id}" if op.job_id else "no job"
    if op.state == "intent":
        return f"{op.kind} (operation {op.id}, {where}) was about to be sent when its process stopped; it may or may not have reached the provider"
    if op.state == "sent":
        return f"{op.kind} (operation {op.id}, {where}) was sent but no answer was recorded; reconcile with the provider"
    return f"{op.kind} (operation {op.id}, {where}) ended without a definite answer; reconcile with the provider"
