"""Evaluation runs (``ftc eval``) and their per-example results, kept for caching and resume:
a run records the process that runs it, so a run whose process is gone reads as
``interrupted`` and two processes never send the same run at once."""

from __future__ import annotations

import difflib
import sqlite3
from dataclasses import replace
from typing import Any, Mapping

from ..errors import UsageError
from ..secrets import redact, redact_json
from .base import StoreBase
from .clock import now_iso
from .records import EVAL_STATES, EvalResult, EvalRun, eval_run_from_row, from_row


class EvalsMixin(StoreBase):
    """The evaluation runs of :class:`ftclient.store.Store`."""

    def put_eval_run(self, run_id: str, *, model_ref: str, data_path: str, data_sha256: str,
                     params: Mapping[str, Any]) -> EvalRun:
        """Record an evaluation run (state ``running``, by this process) unless it exists; returns
        the record."""
        pid, host, start, now = self._me()
        with self._write() as c:
            c.execute(
                "INSERT OR IGNORE INTO eval_runs (id, model_ref, data_path, data_sha256, params_json, state,"
                " created_at, updated_at, pid, worker_host, worker_start) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (run_id, redact(model_ref), str(data_path), data_sha256.lower(), redact_json(dict(params)), now, now,
                 pid, host, start),
            )
        return self.get_eval_run(run_id)

    def restart_eval_run(self, run_id: str, *, fresh: bool = False) -> EvalRun:
        """Mark a run ``running`` by this process before (re)sending its examples; ``fresh``
        also forgets its stored results and summary (``ftc eval --fresh``). Refused while
        another live process runs it."""
        pid, host, start, now = self._me()
        with self._write() as c:
            row = c.execute("SELECT state, pid, worker_host, worker_start, updated_at FROM eval_runs WHERE id = ?",
                            (run_id,)).fetchone()
            if row is None:
                raise UsageError(f"no evaluation run {run_id!r} in the store")
            other = row["pid"] is not None and (row["pid"], row["worker_host"]) != (pid, host)
            if row["state"] == "running" and other and self._alive(
                    row["pid"], row["worker_host"], row["worker_start"], row["updated_at"]):
                raise UsageError(
                    f"evaluation run {run_id} is being run by another process (pid {row['pid']} on "
                    f"{row['worker_host']})",
                    hint="Wait for it to finish (ftc eval show RUN), or stop that process; "
                         "running the same command again afterwards resumes the run.")
            if fresh:
                c.execute("DELETE FROM eval_results WHERE run_id = ?", (run_id,))
                c.execute("UPDATE eval_runs SET summary_json = NULL, sessions = 0 WHERE id = ?", (run_id,))
            c.execute("UPDATE eval_runs SET state = 'running', updated_at = ?, pid = ?, worker_host = ?,"
                      " worker_start = ?, sessions = sessions + 1 WHERE id = ?", (now, pid, host, start, run_id))
        return self.get_eval_run(run_id)

    def save_eval_result(self, run_id: str, *, idx: int, example_key: str, output: str | None,
                         latency_s: float | None, tokens_in: int | None, tokens_out: int | None,
                         error: Any = None) -> None:
        """Store (or replace) the answer to one example; output and error are redacted."""
        err = None if error is None else redact(
            f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error)
        out = None if output is None else redact(output)
        with self._write() as c:
            c.execute(
                "INSERT INTO eval_results (run_id, example_key, idx, output, latency_s, tokens_in, tokens_out, error,"
                " created_at, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " (SELECT NULLIF(sessions, 0) FROM eval_runs WHERE id = ?))"
                " ON CONFLICT (run_id, example_key) DO UPDATE SET idx = excluded.idx, output = excluded.output,"
                " latency_s = excluded.latency_s, tokens_in = excluded.tokens_in, tokens_out = excluded.tokens_out,"
                " error = excluded.error, created_at = excluded.created_at, session = excluded.session",
                (run_id, example_key, int(idx), out, None if latency_s is None else float(latency_s),
                 None if tokens_in is None else int(tokens_in), None if tokens_out is None else int(tokens_out),
                 err, now_iso(), run_id),
            )
            c.execute("UPDATE eval_runs SET updated_at = ? WHERE id = ?", (now_iso(), run_id))

    def eval_results(self, run_id: str) -> dict[str, EvalResult]:
        """A run's stored results keyed by example key, in example order."""
        rows = self._read("SELECT * FROM eval_results WHERE run_id = ? ORDER BY idx, example_key", (run_id,))
        return {r["example_key"]: from_row(EvalResult, r) for r in rows}

    def finish_eval_run(self, run_id: str, summary: Mapping[str, Any], *, state: str = "complete") -> EvalRun:
        """Store a run's summary and its state (``complete``, ``partial`` or ``interrupted``)."""
        if state not in EVAL_STATES:
            raise ValueError(f"not an evaluation state: {state!r} (one of {', '.join(EVAL_STATES)})")
        with self._write() as c:
            cur = c.execute("UPDATE eval_runs SET summary_json = ?, state = ?, updated_at = ? WHERE id = ?",
                            (redact_json(dict(summary)), state, now_iso(), run_id))
            if cur.rowcount != 1:
                raise UsageError(f"no evaluation run {run_id!r} in the store")
        return self.get_eval_run(run_id)

    def get_eval_run(self, ref: str) -> EvalRun:
        """An evaluation run by its id or a unique prefix of it (with or without ``eval-``)."""
        ref = (ref or "").strip()
        hint = "List evaluation runs with `ftc eval list`."
        if not ref:
            raise UsageError("give an evaluation run id", hint=hint)
        rows = self._read("SELECT * FROM eval_runs WHERE id = ?", (ref,))
        if rows:
            return self._eval_run(rows[0])
        n = len(ref)
        rows = self._read(
            "SELECT * FROM eval_runs WHERE substr(id, 1, ?) = ? OR (id LIKE 'eval-%' AND substr(id, 6, ?) = ?)"
            " ORDER BY created_at DESC, id",
            (n, ref, n, ref),
        )
        if len(rows) == 1:
            return self._eval_run(rows[0])
        if not rows:
            ids = [r["id"] for r in self._read("SELECT id FROM eval_runs")]
            close = difflib.get_close_matches(ref, ids, n=3, cutoff=0.6)
            raise UsageError(f"no evaluation run matches {ref!r}",
                             hint=(f"Did you mean {', '.join(close)}? " if close else "") + hint)
        shown = ", ".join(r["id"] for r in rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        raise UsageError(f"{ref!r} matches {len(rows)} evaluation runs: {shown}",
                         hint="Give more characters of the run id.")

    def list_eval_runs(self, limit: int | None = None) -> list[EvalRun]:
        """Evaluation runs, newest first."""
        sql, params = "SELECT * FROM eval_runs ORDER BY created_at DESC, id DESC", []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._eval_run(r) for r in self._read(sql, params)]

    def _eval_run(self, row: sqlite3.Row) -> EvalRun:
        """The record as read, except that a ``running`` run whose process is gone (killed,
        crashed) reads as ``interrupted``: running the same evaluation again resumes it."""
        run = eval_run_from_row(row)
        if run.state == "running" and not self._alive(run.pid, run.worker_host, run.worker_start, run.updated_at):
            run = replace(run, state="interrupted")
        return run
