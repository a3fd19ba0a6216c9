"""The jobs table: a job is recorded (``pending``, owned by this process) before anything is
sent to a provider, found again by any unique part of its id, and moved through the neutral
states (:data:`~ftclient.store.STATES`); a final state is not left again."""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import uuid
from typing import Any, Iterable, Mapping

from ..errors import UsageError
from ..secrets import redact
from .base import StoreBase
from .clock import now_iso
from .errors import DuplicateSubmission, StoreError
from .records import FINAL_STATES, Job, from_row, job_state

_UPDATABLE = {"provider_job_id", "fine_tuned_model", "error", "estimate_usd", "last_event_cursor", "model", "finished_at",
              "step", "total_steps", "loss", "trained_tokens", "cost_so_far_usd"}


class JobsMixin(StoreBase):
    """The jobs of :class:`ftclient.store.Store`."""

    def new_job(
        self,
        backend: str,
        spec_json: str | Mapping[str, Any],
        *,
        model: str | None = None,
        estimate_usd: float | None = None,
    ) -> Job:
        """Record a new job (state ``pending``), owned by this process; returns it.

        The id is ``ftc-YYYYMMDD-xxxxxx``; ``client_token`` is a random uuid4 hex that the
        provider module sends as the idempotency key / suffix and reconciles by.
        """
        text = spec_json if isinstance(spec_json, str) else json.dumps(spec_json, ensure_ascii=False, default=str)
        text = redact(text)
        pid, host, start, now = self._me()
        day = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d")
        for _ in range(20):
            job_id = f"ftc-{day}-{uuid.uuid4().hex[:6]}"
            try:
                with self._write() as c:
                    c.execute(
                        "INSERT INTO jobs (id, backend, state, client_token, spec_json, model, created_at, updated_at,"
                        " estimate_usd, attempts, pid, worker_host, worker_start, heartbeat_at)"
                        " VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                        (job_id, backend, uuid.uuid4().hex, text, model, now, now, estimate_usd, pid, host, start, now),
                    )
                return self.get_job(job_id)
            except sqlite3.IntegrityError:
                continue  # an id clash (1 in 16 million per day): draw again
        raise StoreError("could not draw a unique job id")  # pragma: no cover

    def _job_row(self, job_id: str) -> sqlite3.Row:
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise UsageError(f"no job {job_id!r} in the store", hint="List jobs with `ftc jobs list`.")
        return rows[0]

    def get_job(self, ref: str) -> Job:
        """A job by its id, a unique prefix of it, a unique prefix of its random part
        (``a3f9`` for ``ftc-20261122-a3f9c2``), or the provider's job id."""
        ref = (ref or "").strip()
        if not ref:
            raise UsageError("give a job id", hint="List jobs with `ftc jobs list`.")
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (ref,))
        if rows:
            return from_row(Job, rows[0])
        n = len(ref)
        rows = self._read(
            "SELECT * FROM jobs WHERE substr(id, 1, ?) = ? OR (id LIKE 'ftc-________-%' AND substr(id, 14, ?) = ?)"
            " OR provider_job_id = ? ORDER BY created_at DESC, id",
            (n, ref, n, ref, ref),
        )
        if len(rows) == 1:
            return from_row(Job, rows[0])
        if not rows:
            raise UsageError(f"no job matches {ref!r}", hint="List jobs with `ftc jobs list`.")
        shown = ", ".join(r["id"] for r in rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        raise UsageError(
            f"{ref!r} matches {len(rows)} jobs: {shown}",
            hint="Give more characters of the job id.",
        )

    def list_jobs(
        self,
        backend: str | None = None,
        states: Iterable[Any] | None = None,
        limit: int | None = 50,
    ) -> list[Job]:
        """Jobs, newest first, optionally only of one backend and/or in some states."""
        sql, params = "SELECT * FROM jobs", []
        where = []
        if backend is not None:
            where.append("backend = ?")
            params.append(backend)
        if states is not None:
            st = [job_state(s) for s in ([states] if isinstance(states, str) else states)]
            if not st:
                return []
            where.append(f"state IN ({', '.join('?' * len(st))})")
            params.extend(st)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [from_row(Job, r) for r in self._read(sql, params)]

    def set_provider_job(self, job_id: str, provider_job_id: str) -> Job:
        """Record the provider's id for a job. Setting a different one than recorded is refused."""
        with self._write() as c:
            self._set_provider_job(c, job_id, provider_job_id)
        return self.get_job(job_id)

    def _set_provider_job(self, c: sqlite3.Connection, job_id: str, provider_job_id: str) -> None:
        row = c.execute("SELECT provider_job_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UsageError(f"no job {job_id!r} in the store")
        if row[0] not in (None, provider_job_id):
            raise DuplicateSubmission(
                f"{job_id} is already tracked as {row[0]} at the provider, not {provider_job_id}",
                hint="Two provider jobs for one ftc job: cancel the one you do not want.",
            )
        c.execute(
            "UPDATE jobs SET provider_job_id = ?, updated_at = ? WHERE id = ?", (provider_job_id, now_iso(), job_id)
        )

    def update_state(self, job_id: str, state: Any, *, force: bool = False, **fields: Any) -> Job:
        """Set a job's state and some fields (``fine_tuned_model``, ``error``, ``estimate_usd``,
        ``last_event_cursor``, ``model``, ``provider_job_id``, ``finished_at``, and the progress
        fields ``step``, ``total_steps``, ``loss``, ``trained_tokens``, ``cost_so_far_usd``).

        A final state (succeeded, failed, cancelled) is not left again unless ``force``;
        entering one sets ``finished_at``.
        """
        st = job_state(state)
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"update_state() got unknown fields: {', '.join(sorted(unknown))}")
        if "error" in fields and fields["error"] is not None:
            fields["error"] = redact(fields["error"])
        with self._write() as c:
            row = c.execute("SELECT state, finished_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise UsageError(f"no job {job_id!r} in the store")
            if row["state"] in FINAL_STATES and st != row["state"] and not force:
                raise StoreError(f"{job_id} is already {row['state']}; it cannot become {st}")
            if "provider_job_id" in fields:
                self._set_provider_job(c, job_id, fields.pop("provider_job_id"))
            if st in FINAL_STATES and "finished_at" not in fields and row["finished_at"] is None:
                fields["finished_at"] = now_iso()
            if st not in FINAL_STATES and row["state"] in FINAL_STATES and "finished_at" not in fields:
                fields["finished_at"] = None
            sets = ["state = ?", "updated_at = ?"] + [f"{k} = ?" for k in fields]
            c.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", (st, now_iso(), *fields.values(), job_id))
        return self.get_job(job_id)
