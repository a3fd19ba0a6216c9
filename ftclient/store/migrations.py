"""The store's schema, built by numbered migrations (:data:`MIGRATIONS`), in the manner of
simonw/llm: small functions applied in order, each in its own transaction, recorded in the
``_migrations`` table. See docs/jobs.md for the tables and the states.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

from ..errors import ConfigError
from ..secrets import redact
from .clock import now_iso
from .db import immediate


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register the next numbered migration. Never edit or reorder one that has shipped."""
    MIGRATIONS.append(fn)
    return fn


def _run(conn: sqlite3.Connection, sql: str) -> None:
    # executescript() would COMMIT the surrounding transaction; run statements one by one.
    for stmt in sql.split(";"):
        if stmt.strip():
            conn.execute(stmt)


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    _run(
        conn,
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            backend TEXT NOT NULL,
            provider_job_id TEXT,
            state TEXT NOT NULL,
            client_token TEXT NOT NULL UNIQUE,
            spec_json TEXT NOT NULL,
            model TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT,
            fine_tuned_model TEXT,
            error TEXT,
            estimate_usd REAL,
            last_event_cursor TEXT,
            attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX jobs_provider_job ON jobs (backend, provider_job_id)
            WHERE provider_job_id IS NOT NULL;
        CREATE TABLE uploads (
            id INTEGER PRIMARY KEY,
            provider TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            purpose TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            filename TEXT,
            provider_file_id TEXT,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            verified_at TEXT,
            UNIQUE (provider, sha256, purpose)
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            provider_event_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            level TEXT NOT NULL,
            message TEXT NOT NULL,
            data_json TEXT,
            UNIQUE (job_id, provider_event_id)
        );
        CREATE TABLE operations (
            id INTEGER PRIMARY KEY,
            job_id TEXT REFERENCES jobs (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            client_token TEXT,
            state TEXT NOT NULL,
            request_json TEXT,
            response_json TEXT,
            error TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX operations_job ON operations (job_id)
        """,
    )


@migration
def m002_workers(conn: sqlite3.Connection) -> None:
    """Who works on a job or an operation: pid, host, process start time, heartbeat."""
    for table in ("jobs", "operations"):
        for col, typ in (("pid", "INTEGER"), ("worker_host", "TEXT"), ("worker_start", "TEXT"), ("heartbeat_at", "TEXT")):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {col} {typ}")
    _run(
        conn,
        """
        CREATE INDEX jobs_state ON jobs (state);
        CREATE INDEX jobs_created ON jobs (created_at);
        CREATE INDEX operations_open ON operations (state) WHERE state IN ('intent', 'sent', 'unknown')
        """,
    )


@migration
def m003_progress(conn: sqlite3.Connection) -> None:
    """The last progress seen of a job: step, total steps, loss, trained tokens, cost so far."""
    for col, typ in (("step", "INTEGER"), ("total_steps", "INTEGER"), ("loss", "REAL"),
                     ("trained_tokens", "INTEGER"), ("cost_so_far_usd", "REAL")):
        conn.execute(f"ALTER TABLE jobs ADD COLUMN {col} {typ}")


@migration
def m004_evals(conn: sqlite3.Connection) -> None:
    """Evaluation runs (``ftc eval``) and their per-example results, for caching and resume."""
    _run(
        conn,
        """
        CREATE TABLE eval_runs (
            id TEXT PRIMARY KEY,
            model_ref TEXT NOT NULL,
            data_path TEXT NOT NULL,
            data_sha256 TEXT NOT NULL,
            params_json TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            summary_json TEXT
        );
        CREATE INDEX eval_runs_created ON eval_runs (created_at);
        CREATE TABLE eval_results (
            run_id TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            example_key TEXT NOT NULL,
            idx INTEGER NOT NULL,
            output TEXT,
            latency_s REAL,
            tokens_in INTEGER,
            tokens_out INTEGER,
            error TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, example_key)
        )
        """,
    )


@migration
def m005_eval_workers(conn: sqlite3.Connection) -> None:
    """Who runs an evaluation (pid, host, process start time), so that a run whose process was
    killed reads as ``interrupted`` and two processes never send the same run at once."""
    for col, typ in (("pid", "INTEGER"), ("worker_host", "TEXT"), ("worker_start", "TEXT")):
        conn.execute(f"ALTER TABLE eval_runs ADD COLUMN {col} {typ}")


@migration
def m006_eval_sessions(conn: sqlite3.Connection) -> None:
    """Count an evaluation run's sessions (each ``ftc eval`` that (re)starts it) and record which
    session answered each example, so a resumed run can say its figures span sessions."""
    conn.execute("ALTER TABLE eval_runs ADD COLUMN sessions INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE eval_results ADD COLUMN session INTEGER")


@migration
def m007_redact_eval_refs(conn: sqlite3.Connection) -> None:
    """Credentials an older ftc stored with an evaluation run (an ``openai-compatible:`` URL's
    ``user:pw@``, ``?key=``...) are redacted in place: the store keeps none from now on."""
    conn.execute("PRAGMA secure_delete = ON")  # the old text is overwritten, not left in a free page
    rows = conn.execute("SELECT id, model_ref, params_json, summary_json FROM eval_runs").fetchall()
    for run_id, ref, params, summary in rows:
        new = [redact(v) if isinstance(v, str) else v for v in (ref, params, summary)]
        if new != [ref, params, summary]:
            conn.execute("UPDATE eval_runs SET model_ref = ?, params_json = ?, summary_json = ? WHERE id = ?",
                         (*new, run_id))
    for rowid, error in conn.execute("SELECT rowid, error FROM eval_results WHERE error IS NOT NULL").fetchall():
        if isinstance(error, str) and redact(error) != error:
            conn.execute("UPDATE eval_results SET error = ? WHERE rowid = ?", (redact(error), rowid))


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of the last migration applied to ``conn``'s database (0 for a new one)."""
    try:
        row = conn.execute("SELECT MAX(id) FROM _migrations").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, target: int | None = None) -> list[str]:
    """Apply the migrations not yet applied (up to number ``target``); returns their names.

    Each migration runs in its own ``BEGIN IMMEDIATE`` transaction that first re-checks
    ``_migrations``, so two processes opening a new store at once apply each one once.
    """
    latest = len(MIGRATIONS)
    target = latest if target is None else target
    current = schema_version(conn)
    if current > latest:
        raise ConfigError(
            f"the job store was written by a newer ftc (schema {current}, this ftc knows {latest})",
            hint="Upgrade ftc, or point FTC_HOME at another directory.",
        )
    if current >= target:
        return []
    applied: list[str] = []
    with immediate(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    for number, fn in enumerate(MIGRATIONS, start=1):
        if number > target:
            break
        with immediate(conn):
            if conn.execute("SELECT 1 FROM _migrations WHERE id = ?", (number,)).fetchone():
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, ?)", (number, fn.__name__, now_iso())
            )
            applied.append(fn.__name__)
    return applied
