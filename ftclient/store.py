"""The crash-safe job store: one SQLite file that remembers every job ftc submitted.

A fine-tuning job costs money and runs for hours, so ftc must never create one twice and
never lose track of one, even when the process is killed half-way. The store gives that:

* **Write-ahead operations.** Before any network call that changes something at a
  provider (upload, create, cancel, download) the caller commits an ``operations`` row in
  state ``intent`` (:meth:`Store.begin_operation`), marks it ``sent`` when the request
  leaves (:meth:`Store.mark_sent`), and settles it as ``done``, ``failed`` or ``unknown``
  (:meth:`Store.finish_operation`, :meth:`Store.fail_operation`). A row left in
  ``intent``/``sent``/``unknown`` by a dead process is found by :meth:`Store.pending_work`
  and must be reconciled with the provider (by the job's ``client_token``) before retrying.
  A second ``create`` for a job is refused while an earlier one is open or done.
* **One worker per job.** A job records the pid (and host, and process start time) of the
  process working on it and a heartbeat; :meth:`Store.claim` takes a job over atomically
  only when that worker is gone, so two ``ftc`` processes never resume the same job.
* **SQLite in WAL mode** with a busy timeout: several ``ftc`` processes share one store;
  every write is one short ``BEGIN IMMEDIATE`` transaction; ``synchronous=FULL`` so a
  committed intent survives a power cut.
* **No secrets.** Request and response bodies, errors and event texts go through
  :func:`ftclient.secrets.redact` before they are written.

The schema evolves by numbered migrations (:data:`MIGRATIONS`), in the manner of
simonw/llm: small functions applied in order, each in its own transaction, recorded in
the ``_migrations`` table. See docs/jobs.md for the tables and the states.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .errors import ConfigError, FtcError, UsageError

# --------------------------------------------------------------------------------------------
# vocabulary

#: The neutral job states (the same values as ``ftclient.backends.JobState``).
STATES: tuple[str, ...] = (
    "pending",
    "validating_files",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "submit_unknown",
)
#: States a job never leaves (except with ``update_state(..., force=True)``).
FINAL_STATES: tuple[str, ...] = ("succeeded", "failed", "cancelled")

#: What an operation does at the provider.
OP_KINDS: tuple[str, ...] = ("upload", "create", "cancel", "download")
#: intent: committed before the call; sent: the request is (maybe) out; done/failed: settled;
#: unknown: the call ended without a definite answer (timeout, reset) -- reconcile first.
OP_STATES: tuple[str, ...] = ("intent", "sent", "done", "failed", "unknown")
OPEN_OP_STATES: tuple[str, ...] = ("intent", "sent", "unknown")

UPLOAD_STATUSES: tuple[str, ...] = ("uploading", "uploaded", "processed", "failed", "deleted")

#: A worker refreshes its heartbeat at least this often (seconds) while it works on a job.
HEARTBEAT_INTERVAL_S = 30.0
#: A worker on another host (or where its pid cannot be checked) whose heartbeat is older
#: than this is considered gone.
HEARTBEAT_STALE_S = 180.0
#: On this host, a live pid whose start time cannot be read (not Linux) still counts as
#: gone after this long without a heartbeat (guards against a reused pid).
PID_REUSE_STALE_S = 6 * 3600.0

BUSY_TIMEOUT_S = 10.0

HOST = socket.gethostname()


class StoreError(FtcError):
    """The store refused a change that would break its guarantees (exit 1)."""

    exit_code = 1


class DuplicateSubmission(StoreError):
    """A job was already created, or a create for it may be in flight: reconcile, don't resend."""


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


def _record(cls: Any, row: Mapping[str, Any]) -> Any:
    """A record dataclass from a row, each column coerced to its field's type (:func:`_coerce`);
    columns the dataclass does not know (a newer schema) are left out."""
    import dataclasses

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


#: How many distinct failure reasons :func:`failure_reasons` lists before "N other reasons".
MAX_FAILURE_REASONS = 5


def failure_reasons(errors: Iterable[str | None], *, limit: int = MAX_FAILURE_REASONS) -> list[dict[str, Any]]:
    """Failed examples' reasons grouped: ``[{"reason": ..., "count": n}, ...]``, most frequent
    first (ties in the order first seen). Each reason is its first line with runs of
    whitespace made one space; reasons beyond the ``limit`` most frequent are counted
    together as one ``"N other reasons"`` entry. ``None`` (an answered example) is skipped."""
    import re

    counts: dict[str, int] = {}
    for e in errors:
        if e is None:
            continue
        text = " ".join(str(e).strip().splitlines()[0].split()) if str(e).strip() else ""
        # What differs from one request to the next (its id) and what every reason of a run
        # repeats (which model was asked) are left out, so equal causes group together.
        text = re.sub(r"\s*\((?:x-)?request[ _-]id:? [^)]*\)", "", text, flags=re.IGNORECASE)
        text = re.sub(r"^(?:\S+ rejected )?chat with \S+: ", "", text)
        text = text or "no reason recorded"
        counts[text] = counts.get(text, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: first seen first among ties
    out = [{"reason": r, "count": n} for r, n in ranked[:limit]]
    rest = ranked[limit:]
    if rest:
        out.append({"reason": f"{len(rest)} other reason{'' if len(rest) == 1 else 's'}",
                    "count": sum(n for _, n in rest)})
    return out


def format_failures(failures: Sequence[Mapping[str, Any]] | None, failed: int | None = None) -> str:
    """``"38 failed: 30 x read timeout after 60 s; 8 x HTTP 400: ..."`` from :func:`failure_reasons`'
    groups (``failed``: the total, default their sum)."""
    groups = list(failures or [])
    total = sum(int(g.get("count") or 0) for g in groups) if failed is None else int(failed)
    if not groups:
        return f"{total} failed"
    return f"{total} failed: " + "; ".join(f"{int(g.get('count') or 0)} x {g.get('reason')}" for g in groups)


def _eval_run(row: sqlite3.Row) -> EvalRun:
    d = dict(row)
    params = _loads(d.pop("params_json"))
    summary = _loads(d.pop("summary_json"))
    d = {k: _coerce(str(t), d[k]) for k, t in EvalRun.__annotations__.items() if k in d}
    return EvalRun(params=params if isinstance(params, dict) else {}, summary=summary if isinstance(summary, dict) else None,
                   **d)


# --------------------------------------------------------------------------------------------
# migrations

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
    from .secrets import redact

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
    with _immediate(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    for number, fn in enumerate(MIGRATIONS, start=1):
        if number > target:
            break
        with _immediate(conn):
            if conn.execute("SELECT 1 FROM _migrations WHERE id = ?", (number,)).fetchone():
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, ?)", (number, fn.__name__, _now())
            )
            applied.append(fn.__name__)
    return applied


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _retry_locked(fn: Callable[[], Any], timeout: float = BUSY_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            msg = str(e)
            if ("locked" not in msg and "busy" not in msg) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


# --------------------------------------------------------------------------------------------
# time and processes


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def _iso_ago(seconds: float) -> str:
    return (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _to_iso(value: Any) -> str:
    if value is None or value == "":
        return _now()
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _dt.datetime.fromtimestamp(float(value), _dt.timezone.utc).isoformat(timespec="microseconds")
    return str(value)


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a Linux process, from /proc; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(")") + 2 :].split()
    if len(rest) < 20:
        return None
    return rest[0], rest[19]  # field 3 (state), field 22 (starttime)


def _process_start(pid: int) -> str | None:
    st = _proc_stat(pid)
    return st[1] if st else None


def _pid_running(pid: int) -> bool | None:
    """Whether ``pid`` runs on this host; None when that cannot be checked (Windows)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    except OSError:
        return None
    st = _proc_stat(pid)
    if st is not None and st[0] in ("Z", "X"):  # killed, not reaped yet
        return False
    return True


def _age_s(iso: str | None) -> float:
    if not iso:
        return float("inf")
    try:
        t = _dt.datetime.fromisoformat(iso)
    except ValueError:
        return float("inf")
    return (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()


# --------------------------------------------------------------------------------------------
# the store

_UPDATABLE = {"provider_job_id", "fine_tuned_model", "error", "estimate_usd", "last_event_cursor", "model", "finished_at",
              "step", "total_steps", "loss", "trained_tokens", "cost_so_far_usd"}


def _state(value: Any) -> str:
    s = getattr(value, "value", value)
    if s not in STATES:
        raise ValueError(f"not a job state: {value!r} (one of {', '.join(STATES)})")
    return s


def _store_problem(e: BaseException) -> str:
    """What an SQLite error says about the store: ``broken`` (not an SQLite database, corrupt,
    not ftc's), ``full`` (disk or quota full, a file size limit), ``readonly`` (read-only file
    system, no permission), ``io`` (an I/O error), ``locked`` (another process holds it)."""
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(e).lower()
    if primary == 13 or "disk is full" in text or "disk or quota" in text:  # SQLITE_FULL
        return "full"
    if primary in (3, 8, 14, 23) or "readonly" in text or "read-only" in text or "unable to open" in text:
        return "readonly"  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_AUTH
    if primary == 10 or "disk i/o error" in text:  # SQLITE_IOERR
        return "io"
    if primary in (5, 6) or "locked" in text or "busy" in text:  # SQLITE_BUSY, SQLITE_LOCKED
        return "locked"
    return "broken"  # SQLITE_NOTADB, SQLITE_CORRUPT, a schema that is not ftc's


def store_error(path: Path, e: BaseException, *, opening: bool = False) -> FtcError:
    """One message for an SQLite error on the store, telling a broken store (move it away) from a
    healthy one on a full, read-only or busy disk (keep it: it holds the job history)."""
    kind = _store_problem(e)
    said = str(e)
    e = f"SQLite: {said}" if said else type(e).__name__  # type: ignore[assignment]
    keep = "The store itself is not damaged: keep it, it holds your job history."
    cls = ConfigError if opening else StoreError
    if kind == "broken":
        return ConfigError(
            f"{path}: not a usable ftc job store ({e})",
            hint="It is not an SQLite database or it is damaged: move the file away (ftc starts a new store) "
                 "or set FTC_HOME to another directory.",
        )
    if kind == "full":
        return cls(f"{path}: the job store cannot be written: no space left (disk, quota or file size limit; {e})",
                   hint=f"Free some space on that disk and run the command again. {keep}")
    if kind == "readonly":
        return cls(f"{path}: the job store cannot be written: read-only or no permission ({e})",
                   hint=f"Make {path.parent} writable for this user (or set FTC_HOME to a writable directory). {keep}")
    if kind == "io":
        return cls(f"{path}: the job store cannot be written: an I/O error ({e}; a full disk or a file size limit "
                   "can cause it)",
                   hint=f"Check free space and the disk, then run the command again. {keep}")
    return cls(f"{path}: the job store is locked by another process ({e})",
               hint=f"Wait for the other ftc process to finish, then try again. {keep}")


class Store:
    """The job store. One SQLite connection per object; safe to use from several processes.

    ``Store()`` opens ``ftclient.paths.store_path()``; ``Store(path)`` any file. The schema is
    migrated to the latest version on open. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        stale_after: float = HEARTBEAT_STALE_S,
        _migrate_to: int | None = None,
    ):
        if path is None:
            from .paths import store_path

            path = store_path()
        self.path = Path(path)
        self.stale_after = float(stale_after)
        self._lock = threading.RLock()
        new = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{self.path.parent}: cannot create the job store's directory ({e.strerror})") from None
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise store_error(self.path, e, opening=True) from None
        self._conn.row_factory = sqlite3.Row
        try:
            if new and os.name != "nt":
                with contextlib.suppress(OSError):
                    os.chmod(self.path, 0o600)
            c = self._conn
            c.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            c.execute("PRAGMA synchronous = FULL")
            c.execute("PRAGMA foreign_keys = ON")
            # Switching a new database to WAL takes an exclusive lock without waiting on the
            # busy handler, so two processes creating the store at once can see "locked":
            # retry the (idempotent) set-up until the busy timeout.
            _retry_locked(lambda: self._setup(_migrate_to))
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise store_error(self.path, e, opening=True) from None
        except BaseException:
            self._conn.close()
            raise

    def _setup(self, target: int | None) -> None:
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        self.journal_mode = str(mode).lower()
        migrate(self._conn, target)

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return schema_version(self._conn)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; BEGIN IMMEDIATE takes the write lock up front (waiting
        up to the busy timeout) so it never fails half-way with 'database is locked'."""
        with self._lock:
            try:
                with _immediate(self._conn) as c:
                    yield c
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    raise StoreError(
                        f"{self.path}: the job store stayed locked for {BUSY_TIMEOUT_S:.0f} s",
                        hint="Another ftc process holds it; try again.",
                    ) from e
                if _store_problem(e) in ("full", "readonly", "io"):
                    raise store_error(self.path, e) from None
                raise
            except sqlite3.DatabaseError as e:
                if _store_problem(e) == "broken":
                    raise store_error(self.path, e) from None
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _me(self) -> tuple[int, str, str | None, str]:
        pid = os.getpid()
        return pid, HOST, _process_start(pid), _now()

    def _alive(self, pid: int | None, host: str | None, start: str | None, heartbeat: str | None) -> bool:
        """Whether the worker recorded as (pid, host, start, heartbeat) is still at work."""
        if pid is None:
            return False
        if host == HOST:
            if pid == os.getpid() and (start is None or start == _process_start(pid)):
                return True
            running = _pid_running(pid)
            if running is False:
                return False
            if running:
                now_start = _process_start(pid)
                if start is not None and now_start is not None:
                    return start == now_start  # a different start time: the pid was reused
                return _age_s(heartbeat) < PID_REUSE_STALE_S
        return _age_s(heartbeat) < self.stale_after

    # -- jobs --------------------------------------------------------------------------------

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
        from .secrets import redact

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
            return _record(Job, rows[0])
        n = len(ref)
        rows = self._read(
            "SELECT * FROM jobs WHERE substr(id, 1, ?) = ? OR (id LIKE 'ftc-________-%' AND substr(id, 14, ?) = ?)"
            " OR provider_job_id = ? ORDER BY created_at DESC, id",
            (n, ref, n, ref, ref),
        )
        if len(rows) == 1:
            return _record(Job, rows[0])
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
            st = [_state(s) for s in ([states] if isinstance(states, str) else states)]
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
        return [_record(Job, r) for r in self._read(sql, params)]

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
            "UPDATE jobs SET provider_job_id = ?, updated_at = ? WHERE id = ?", (provider_job_id, _now(), job_id)
        )

    def update_state(self, job_id: str, state: Any, *, force: bool = False, **fields: Any) -> Job:
        """Set a job's state and some fields (``fine_tuned_model``, ``error``, ``estimate_usd``,
        ``last_event_cursor``, ``model``, ``provider_job_id``, ``finished_at``, and the progress
        fields ``step``, ``total_steps``, ``loss``, ``trained_tokens``, ``cost_so_far_usd``).

        A final state (succeeded, failed, cancelled) is not left again unless ``force``;
        entering one sets ``finished_at``.
        """
        from .secrets import redact

        st = _state(state)
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
                fields["finished_at"] = _now()
            if st not in FINAL_STATES and row["state"] in FINAL_STATES and "finished_at" not in fields:
                fields["finished_at"] = None
            sets = ["state = ?", "updated_at = ?"] + [f"{k} = ?" for k in fields]
            c.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", (st, _now(), *fields.values(), job_id))
        return self.get_job(job_id)

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
        ops = [_record(Operation, r) for r in self._read(
            "SELECT * FROM operations WHERE state IN ('intent', 'sent', 'unknown') ORDER BY id"
        )]
        final = ", ".join(f"'{s}'" for s in FINAL_STATES)
        jobs = [_record(Job, r) for r in self._read(f"SELECT * FROM jobs WHERE state NOT IN ({final}) ORDER BY created_at, id")]
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
                job = _record(Job, self._job_row(job_id))
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
        from .secrets import redact_json

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
        return _record(Operation, rows[0])

    def operations(self, job_id: str, kind: str | None = None) -> list[Operation]:
        """A job's operations, oldest first."""
        sql, params = "SELECT * FROM operations WHERE job_id = ?", [job_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [_record(Operation, r) for r in self._read(sql + " ORDER BY id", params)]

    def _transition(self, c: sqlite3.Connection, op_id: int, allowed: tuple[str, ...], new: str) -> sqlite3.Row:
        row = c.execute("SELECT * FROM operations WHERE id = ?", (op_id,)).fetchone()
        if row is None:
            raise UsageError(f"no operation {op_id} in the store")
        if row["state"] not in allowed:
            raise StoreError(f"operation {op_id} is {row['state']}; it cannot become {new}")
        return row

    def mark_sent(self, op_id: int) -> Operation:
        """The request is about to leave / has left: from here on its effect is uncertain."""
        now = _now()
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
        from .secrets import redact_json

        resp = None if response is None else redact_json(response)
        st = None if state is None else _state(state)
        now = _now()
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
        from .secrets import redact

        msg = redact(f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error)
        now = _now()
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

    # -- events ------------------------------------------------------------------------------

    def add_events(self, job_id: str, events: Iterable[Any], *, cursor: str | None = None) -> int:
        """Store a job's provider events; ones already stored (same ``provider_event_id``) are
        skipped. Returns how many were new. ``cursor`` (the provider's pagination position)
        is saved as ``last_event_cursor`` in the same transaction.

        Each event is a mapping or object with ``provider_event_id`` (or ``id``),
        ``created_at`` (ISO text, datetime or epoch seconds), ``level``, ``message``, ``data``.
        An event without an id gets one derived from its content.
        """
        from .secrets import redact, redact_json

        rows = []
        for ev in events:
            get = ev.get if isinstance(ev, Mapping) else (lambda k, d=None, _e=ev: getattr(_e, k, d))
            eid = get("provider_event_id") or get("id")
            created = _to_iso(get("created_at"))
            level = str(getattr(get("level") or "info", "value", get("level") or "info"))
            message = redact(get("message") or "")
            data = get("data")
            data_json = None if data is None else redact_json(data)
            if not eid:
                eid = "sha1:" + hashlib.sha1(f"{created}\x00{level}\x00{message}\x00{data_json}".encode()).hexdigest()
            rows.append((job_id, str(eid), created, level, message, data_json))
        with self._write() as c:
            if c.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise UsageError(f"no job {job_id!r} in the store")
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO events (job_id, provider_event_id, created_at, level, message, data_json)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            new = c.total_changes - before
            if cursor is not None:
                c.execute("UPDATE jobs SET last_event_cursor = ?, updated_at = ? WHERE id = ?", (cursor, _now(), job_id))
        return new

    def list_events(self, job_id: str, *, after: int | None = None, limit: int | None = None) -> list[Event]:
        """A job's events in the order the provider dated them (then as stored); ``after``
        is an event row id, for following new events."""
        sql, params = "SELECT * FROM events WHERE job_id = ?", [job_id]
        if after is not None:
            sql += " AND id > ?"
            params.append(after)
        sql += " ORDER BY created_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_record(Event, r) for r in self._read(sql, params)]

    # -- uploads -----------------------------------------------------------------------------

    def find_upload(self, provider: str, sha256: str, purpose: str = "fine-tune") -> Upload | None:
        """The upload of this content to this provider, if one was recorded."""
        rows = self._read(
            "SELECT * FROM uploads WHERE provider = ? AND sha256 = ? AND purpose = ?", (provider, sha256.lower(), purpose)
        )
        return _record(Upload, rows[0]) if rows else None

    def record_upload(
        self,
        provider: str,
        sha256: str,
        *,
        bytes: int,
        provider_file_id: str | None,
        purpose: str = "fine-tune",
        status: str = "uploaded",
        filename: str | None = None,
    ) -> Upload:
        """Record (or update) the upload of a file's content to a provider."""
        if status not in UPLOAD_STATUSES:
            raise ValueError(f"not an upload status: {status!r} (one of {', '.join(UPLOAD_STATUSES)})")
        sha = sha256.lower()
        with self._write() as c:
            c.execute(
                "INSERT INTO uploads (provider, sha256, purpose, bytes, filename, provider_file_id, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider, sha256, purpose) DO UPDATE SET bytes = excluded.bytes,"
                " filename = COALESCE(excluded.filename, filename),"
                " provider_file_id = COALESCE(excluded.provider_file_id, provider_file_id),"
                " status = excluded.status",
                (provider, sha, purpose, int(bytes), filename, provider_file_id, status, _now()),
            )
        found = self.find_upload(provider, sha, purpose)
        assert found is not None
        return found

    @contextlib.contextmanager
    def upload_lock(self, provider: str, sha256: str, purpose: str = "fine-tune", *,
                    on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the right to upload this content to this provider, across processes.

        Whoever holds it looks up :meth:`find_upload`, uploads only if nothing usable is
        recorded, and records the result before letting go; the others wait (``on_wait``
        is called once first) and then find that upload. It is an exclusive ``flock`` on a
        small file in ``locks/`` next to the store, so the lock of a killed process ends
        with it. Where files cannot be locked (or the folder cannot be written) there is
        no lock: the upload is then merely done once per process, as before.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        key = hashlib.sha256(f"{provider}\0{sha256.lower()}\0{purpose}".encode()).hexdigest()[:32]
        path = self.path.parent / "locks" / f"upload-{key}.lock"
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError:
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)  # Ctrl-C still interrupts the wait
            yield
        finally:
            os.close(fd)  # releases the lock

    def set_upload_status(self, upload_id: int, status: str, *, verified: bool = False) -> Upload:
        """Change an upload's status; ``verified`` records that the provider still has it now."""
        if status not in UPLOAD_STATUSES:
            raise ValueError(f"not an upload status: {status!r} (one of {', '.join(UPLOAD_STATUSES)})")
        with self._write() as c:
            c.execute(
                "UPDATE uploads SET status = ?, verified_at = CASE WHEN ? THEN ? ELSE verified_at END WHERE id = ?",
                (status, 1 if verified else 0, _now(), upload_id),
            )
        rows = self._read("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        if not rows:
            raise UsageError(f"no upload {upload_id} in the store")
        return _record(Upload, rows[0])


    # -- evaluation runs -----------------------------------------------------------------------

    def put_eval_run(self, run_id: str, *, model_ref: str, data_path: str, data_sha256: str,
                     params: Mapping[str, Any]) -> EvalRun:
        """Record an evaluation run (state ``running``, by this process) unless it exists; returns
        the record."""
        from .secrets import redact, redact_json

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
        from .secrets import redact

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
                 err, _now(), run_id),
            )
            c.execute("UPDATE eval_runs SET updated_at = ? WHERE id = ?", (_now(), run_id))

    def eval_results(self, run_id: str) -> dict[str, EvalResult]:
        """A run's stored results keyed by example key, in example order."""
        rows = self._read("SELECT * FROM eval_results WHERE run_id = ? ORDER BY idx, example_key", (run_id,))
        return {r["example_key"]: _record(EvalResult, r) for r in rows}

    def finish_eval_run(self, run_id: str, summary: Mapping[str, Any], *, state: str = "complete") -> EvalRun:
        """Store a run's summary and its state (``complete``, ``partial`` or ``interrupted``)."""
        from .secrets import redact_json

        if state not in EVAL_STATES:
            raise ValueError(f"not an evaluation state: {state!r} (one of {', '.join(EVAL_STATES)})")
        with self._write() as c:
            cur = c.execute("UPDATE eval_runs SET summary_json = ?, state = ?, updated_at = ? WHERE id = ?",
                            (redact_json(dict(summary)), state, _now(), run_id))
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
            import difflib

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
        run = _eval_run(row)
        if run.state == "running" and not self._alive(run.pid, run.worker_host, run.worker_start, run.updated_at):
            run = replace(run, state="interrupted")
        return run


@contextlib.contextmanager
def opened(store: Store | None = None) -> Iterator[Store]:
    """``store`` itself (left open), or a new :class:`Store` on the default path, closed afterwards."""
    if store is not None:
        yield store
        return
    s = Store()
    try:
        yield s
    finally:
        s.close()


def _op_reason(op: Operation) -> str:
    where = f"job {op.job_id}" if op.job_id else "no job"
    if op.state == "intent":
        return f"{op.kind} (operation {op.id}, {where}) was about to be sent when its process stopped; it may or may not have reached the provider"
    if op.state == "sent":
        return f"{op.kind} (operation {op.id}, {where}) was sent but no answer was recorded; reconcile with the provider"
    return f"{op.kind} (operation {op.id}, {where}) ended without a definite answer; reconcile with the provider"


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
    "MIGRATIONS",
    "migrate",
    "schema_version",
]
