"""Where ftc keeps its own state: the job store, the key file and per-job folders.

Everything lives under one directory, :func:`ftc_home`:

* ``$FTC_HOME`` when it is set (tests and CI point it at a temporary folder);
* otherwise the per-user data directory, the same place ``platformdirs.user_data_dir("ftc")``
  gives: ``$XDG_DATA_HOME/ftc`` or ``~/.local/share/ftc`` on Linux,
  ``~/Library/Application Support/ftc`` on macOS, ``%LOCALAPPDATA%\\ftc`` on Windows.

The directory is created with mode 0700 on first use, so the store and the key file
inside it are never reachable by other users even for a moment.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from .errors import ConfigError, UsageError

STORE_FILE = "ftc.db"
KEYS_FILE = "keys.json"
JOBS_DIR = "jobs"

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _default_home() -> Path:
    if sys.platform == "win32":  # pragma: no cover - not run on the CI machines
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "ftc"
    if sys.platform == "darwin":  # pragma: no cover
        return Path.home() / "Library" / "Application Support" / "ftc"
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    # The XDG spec says a relative path is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "ftc"


def ftc_home(*, create: bool = True) -> Path:
    """ftc's state directory (``$FTC_HOME`` or the user data dir), created 0700 if missing
    (unless ``create`` is False)."""
    env = os.environ.get("FTC_HOME", "").strip()
    home = Path(env).expanduser() if env else _default_home()
    if create and not home.is_dir():
        try:
            # mkdir's mode is masked by the umask; 0700 & ~umask is never wider than 0700.
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            raise ConfigError(
                f"{home}: exists and is not a directory",
                hint="Point FTC_HOME at a directory ftc may use for its job store and keys.",
            ) from None
        except OSError as e:
            raise ConfigError(
                f"{home}: cannot create ftc's state directory ({e.strerror})",
                hint="Set FTC_HOME to a writable directory.",
            ) from None
        if os.name != "nt":
            try:
                os.chmod(home, 0o700)
            except OSError:  # pragma: no cover - a directory we just made
                pass
    return home


def store_path() -> Path:
    """The SQLite job store: ``<ftc_home>/ftc.db``."""
    return ftc_home() / STORE_FILE


def keys_path() -> Path:
    """The API key file: ``<ftc_home>/keys.json`` (mode 0600)."""
    return ftc_home() / KEYS_FILE


def job_dir(job_id: str, *, create: bool = False) -> Path:
    """The folder for one job's files (logs, downloaded results): ``<ftc_home>/jobs/<job_id>``."""
    if not _JOB_ID_RE.match(job_id or "") or job_id in {".", ".."}:
        raise UsageError(f"not a valid job id: {job_id!r}")
    d = ftc_home() / JOBS_DIR / job_id
    if create:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d
