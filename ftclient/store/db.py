"""SQLite transactions: every write is one short ``BEGIN IMMEDIATE`` transaction, which
takes the write lock up front (waiting up to the busy timeout) so it never fails half-way
with "database is locked"; :func:`retry_locked` retries what SQLite refuses without waiting
on its busy handler."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import Any, Callable, Iterator

#: How long a write waits for another process's write lock (seconds).
BUSY_TIMEOUT_S = 10.0


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction on ``conn``: committed at the end, rolled back on
    any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def retry_locked(fn: Callable[[], Any], timeout: float = BUSY_TIMEOUT_S) -> Any:
    """``fn()``, called again (with a growing pause) while SQLite says "locked" or "busy", for
    up to ``timeout`` seconds."""
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
