"""Reading user files robustly and writing ours atomically.

Every file ftc writes goes through :func:`atomic_writer`: a temporary file in the
target directory, renamed over the target only when writing finished without error,
so a crash or a bad input never leaves a partial output file behind.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from .errors import DataError, UsageError

# A line longer than this is refused instead of being loaded (a sign of a binary or
# minified file); generous enough for long multi-turn conversations.
MAX_LINE_BYTES = 8 * 1024 * 1024

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def check_input_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it is a readable, non-empty regular file."""
    if not os.fspath(path):  # Path("") would be the current directory
        raise UsageError("the file name is empty", hint="Give the path of a data file.")
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file", hint="Check the path.")
    if p.is_dir():
        raise UsageError(f"{p}: not a regular file (a directory)", hint="Give the path of a data file.")
    mode = p.stat().st_mode  # stat, not open: opening a FIFO would wait for a writer
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
        raise UsageError(f"{p}: not a regular file ({kind})",
                         hint="Give a data file; save piped data to a file first (ftc reads its data more than once).")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{p}: not readable (permission denied)")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: the file is empty", hint="Give a file with at least one example.")
    return p


def sniff_encoding(path: Path) -> str:
    """Encoding of a text file: from its BOM, else UTF-8. Binary files are refused."""
    with open(path, "rb") as f:
        head = f.read(65536)
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return enc
    if b"\x00" in head:
        raise DataError(
            f"{path}: looks like a binary file (NUL bytes), not text",
            hint="Give a UTF-8 CSV, TSV, JSON or JSONL file.",
        )
    return "utf-8"


def open_text(path: str | os.PathLike, newline: str | None = None) -> IO[str]:
    """Open a user's text file with its encoding (BOM-aware); decoding errors name the file."""
    p = check_input_file(path)
    enc = sniff_encoding(p)
    return open(p, encoding=enc, errors="strict", newline=newline)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of a text file, streaming.

    Raises DataError on undecodable bytes or a line over MAX_LINE_BYTES, naming the line.
    """
    p = check_input_file(path)
    enc = sniff_encoding(p)
    lineno = 0
    with open(p, "rb") as raw:
        if enc != "utf-8":
            stream: IO[str] = io.TextIOWrapper(raw, encoding=enc, errors="strict")
            lines = iter(stream.readline, "")
        else:
            lines = None
        while True:
            lineno += 1
            try:
                if lines is None:
                    b = raw.readline(MAX_LINE_BYTES + 1)
                    if not b:
                        return
                    if len(b) > MAX_LINE_BYTES and not b.endswith(b"\n"):
                        raise DataError(
                            f"{p}:{lineno}: line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB",
                            hint="Is this a binary or minified file? Give one example per line.",
                        )
                    text = b.decode("utf-8")
                else:
                    text = next(lines, None)
                    if text is None:
                        return
                    if len(text) > MAX_LINE_BYTES:
                        raise DataError(f"{p}:{lineno}: line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{p}:{lineno}: not valid {enc} text ({e.reason} at byte {e.start})",
                    hint="Save the file as UTF-8.",
                ) from None
            yield lineno, text


# A temporary file of atomic_writer: "." + the target's name + "." + 8 random characters
# (tempfile's) + ".tmp". Its writer holds an exclusive lock on it until the rename; one
# found unlocked and older than this was left by a killed process and is removed.
STALE_TEMP_AGE_S = 10.0
_NO_LOCK_STALE_AGE_S = 7 * 86400.0  # where files cannot be locked: only really old ones


def _temp_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"\.%s\.[A-Za-z0-9_]{8}\.tmp\Z" % re.escape(name))


def _try_lock(fd: int, *, wait: bool = False) -> bool | None:
    """Lock ``fd`` exclusively (flock): True if locked, False if another process holds it,
    None where files cannot be locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def remove_stale_temps(directory: str | os.PathLike, names: Iterable[str]) -> int:
    """Remove what killed runs of :func:`atomic_writer` left in ``directory`` for the targets
    ``names``: temporary files no live writer holds. Returns how many were removed."""
    pats = [_temp_pattern(n) for n in names]
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    now = time.time()
    for e in entries:
        if not any(p.match(e.name) for p in pats):
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
                continue
            if now - st.st_mtime < STALE_TEMP_AGE_S:
                continue
            fd = os.open(e.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            locked = _try_lock(fd)
            if locked is False or (locked is None and now - st.st_mtime < _NO_LOCK_STALE_AGE_S):
                continue  # a live writer's
            if os.fstat(fd).st_ino != os.stat(e.path, follow_symlinks=False).st_ino:
                continue  # replaced meanwhile
            os.unlink(e.path)
            removed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Write ``path`` atomically: the target appears complete or not at all."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{parent}: cannot create directory ({e.strerror})") from None
    if target.is_dir():
        raise UsageError(f"{target}: is a directory")
    remove_stale_temps(parent, [target.name])
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise UsageError(
            f"{target}: cannot write here ({e.strerror})", hint="Choose a writable output directory."
        ) from None
    # Held until the rename (a dup: closing the file does not release it), so that
    # remove_stale_temps() in another process leaves this file alone.
    lock_fd = os.dup(fd)
    _try_lock(lock_fd, wait=True)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(target):
            try:
                os.chmod(tmp, os.stat(target).st_mode & 0o777)
            except OSError:
                pass
        else:
            os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        mapped = write_error(target, e)
        if mapped is None:
            raise
        raise mapped from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(lock_fd)


#: errno names of a write that failed because of where it writes, not of what: the disk or
#: quota is full, a file size limit, a read-only file system, no permission, an I/O error.
_FULL_ERRNOS = ("ENOSPC", "EDQUOT", "EFBIG")
_READONLY_ERRNOS = ("EROFS", "EACCES", "EPERM")


def write_error(target: str | os.PathLike, e: OSError, hint: str | None = None) -> "DataError | UsageError | None":
    """One message for an OSError that writing ``target`` met (disk full, read-only, no
    permission, I/O error): what happened, that nothing partial was left, and what to do.
    None for any other error (a bug to report, not the user's disk). ``hint`` replaces the
    general advice."""
    import errno as _errno

    name = _errno.errorcode.get(e.errno or 0, "")
    why = e.strerror or str(e)
    if name in _FULL_ERRNOS:
        return DataError(f"{target}: cannot write: {why} (nothing partial was left)",
                         hint=hint or "Free some space (or raise the quota / file size limit), or write to another disk.")
    if name in _READONLY_ERRNOS:
        return UsageError(f"{target}: cannot write: {why} (nothing partial was left)",
                          hint=hint or "Write to a directory you can write to, or fix its permissions.")
    if name == "EIO":
        return DataError(f"{target}: cannot write: {why} (nothing partial was left)",
                         hint=hint or "Check the disk, then run the command again.")
    return None


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_writer(path) as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    with atomic_writer(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")


def dumps_jsonl(obj: Any) -> str:
    """One JSONL line (compact, UTF-8 kept as is)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib  # OpenSSL's bindings (about 3 ms) only for a file that is hashed

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def count_records(path: str | os.PathLike) -> int:
    """The records of a JSONL file: its non-blank lines (read as it goes, not whole)."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                n += 1
    return n
