"""The store's connection: one SQLite file in WAL mode, shared by several ``ftc`` processes.

* **SQLite in WAL mode** with a busy timeout: several ``ftc`` processes share one store;
  every write is one short ``BEGIN IMMEDIATE`` transaction; ``synchronous=FULL`` so a
  committed intent survives a power cut.
* The schema is migrated to the latest version on open (:mod:`ftclient.store.migrations`).

:class:`StoreBase` opens the file and gives the mixins of :class:`ftclient.store.Store` their
plumbing: one write transaction (``_write``), a read (``_read``), this process as a worker
(``_me``) and whether a recorded worker is still at work (``_alive``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

from ..errors import ConfigError
from ..paths import store_path
from .clock import age_s, now_iso
from .db import BUSY_TIMEOUT_S, immediate, retry_locked
from .errors import StoreError, store_error, store_problem
from .migrations import migrate, schema_version
from .procs import HEARTBEAT_STALE_S, HOST, PID_REUSE_STALE_S, pid_running, process_start

_S = TypeVar("_S", bound="StoreBase")


class StoreBase:
    """The connection under :class:`ftclient.store.Store`: one SQLite connection per object,
    safe to use from several processes (see ``Store``)."""

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        stale_after: float = HEARTBEAT_STALE_S,
        _migrate_to: int | None = None,
    ):
        if path is None:
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
            retry_locked(lambda: self._setup(_migrate_to))
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

    def __enter__(self: _S) -> _S:
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
                with immediate(self._conn) as c:
                    yield c
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    raise StoreError(
                        f"{self.path}: the job store stayed locked for {BUSY_TIMEOUT_S:.0f} s",
                        hint="Another ftc process holds it; try again.",
                    ) from e
                if store_problem(e) in ("full", "readonly", "io"):
                    raise store_error(self.path, e) from None
                raise
            except sqlite3.DatabaseError as e:
                if store_problem(e) == "broken":
                    raise store_error(self.path, e) from None
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _me(self) -> tuple[int, str, str | None, str]:
        pid = os.getpid()
        return pid, HOST, process_start(pid), now_iso()

    def _alive(self, pid: int | None, host: str | None, start: str | None, heartbeat: str | None) -> bool:
        """Whether the worker recorded as (pid, host, start, heartbeat) is still at work."""
        if pid is None:
            return False
        if host == HOST:
            if pid == os.getpid() and (start is None or start == process_start(pid)):
                return True
            running = pid_running(pid)
            if running is False:
                return False
            if running:
                now_start = process_start(pid)
                if start is not None and now_start is not None:
                    return start == now_start  # a different start time: the pid was reused
                return age_s(heartbeat) < PID_REUSE_STALE_S
        return age_s(heartbeat) < self.stale_after
