"""Which process works on a job: this host's name, a process's start time and whether a
pid still runs (from ``/proc`` on Linux), and how long a heartbeat counts.

A worker is recorded as (pid, host, process start time, heartbeat): on this host a pid that
no longer runs, or runs with another start time (a reused pid), is gone; on another host
(or where the pid cannot be checked) a heartbeat older than :data:`HEARTBEAT_STALE_S` is.
"""

from __future__ import annotations

import os
import socket

#: A worker refreshes its heartbeat at least this often (seconds) while it works on a job.
HEARTBEAT_INTERVAL_S = 30.0
#: A worker on another host (or where its pid cannot be checked) whose heartbeat is older
#: than this is considered gone.
HEARTBEAT_STALE_S = 180.0
#: On this host, a live pid whose start time cannot be read (not Linux) still counts as
#: gone after this long without a heartbeat (guards against a reused pid).
PID_REUSE_STALE_S = 6 * 3600.0

HOST = socket.gethostname()


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


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc); None where it cannot be read.
    With the pid, it tells a process from a later one that reused its pid."""
    st = _proc_stat(pid)
    return st[1] if st else None


def pid_running(pid: int) -> bool | None:
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
