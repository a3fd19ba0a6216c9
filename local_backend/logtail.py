"""The end of a log, as an error message shows it: the last distinct lines, whole, bounded."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["log_tail"]


def log_tail(path: Path, *, lines: int = 4, max_chars: int = 800, window: int = 64 * 1024) -> str:
    """The last ``lines`` distinct non-blank lines of a log, whole and in the log's order,
    at most about ``max_chars`` in all (a single longer line keeps its beginning). A line
    that repeats (the same error after each restart) is shown once, where it last appears.
    Only the last ``window`` bytes are read; the partial first line of that window is
    left out."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - window)
            f.seek(start)
            data = f.read()
    except OSError:
        return ""
    found = data.decode("utf-8", "replace").splitlines()
    if start > 0 and found:
        found = found[1:]
    picked: list[str] = []
    seen: set[str] = set()
    used = 0
    for raw in reversed(found):
        line = raw.rstrip()
        key = line.strip()
        if not key or key in seen:
            continue
        seen.add(key)
        if picked and used + len(line) > max_chars:
            break
        if len(line) > max_chars:
            line = line[: max_chars - 3].rstrip() + "..."
        picked.append(line)
        used += len(line) + 1
        if len(picked) >= lines:
            break
    return "\n".join(reversed(picked))
