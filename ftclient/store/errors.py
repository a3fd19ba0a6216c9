"""The store's errors: the changes it refuses (:class:`StoreError`,
:class:`DuplicateSubmission`) and one clear message for an SQLite error on the store file
(:func:`store_error`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, FtcError


class StoreError(FtcError):
    """The store refused a change that would break its guarantees (exit 1)."""

    exit_code = 1


class DuplicateSubmission(StoreError):
    """A job was already created, or a create for it may be in flight: reconcile, don't resend."""


def store_problem(e: BaseException) -> str:
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
    kind = store_problem(e)
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
