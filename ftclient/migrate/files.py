"""Local copies of a provider's fine-tuning files, kept under ``$FTC_HOME/migrate/files``.

A file is downloaded once (streamed into a temporary file, then renamed: never a partial
copy under the final name) and found again by its provider file id, so a scan, a capture
and a plan of the same model read it from disk. A provider that does not hand the file
out raises :class:`~ftclient.migrate.source.DownloadRefused`; then the user's own copy is
used, checked against the provider's byte count.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError
from ..paths import ftc_home
from .source import ProviderFile

__all__ = ["MAX_DOWNLOAD_BYTES", "cached_copy", "download", "check_own_copy"]

#: The largest file ftc downloads (OpenAI takes training files up to 512 MB).
MAX_DOWNLOAD_BYTES = 1 << 30

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _folder(source: str) -> Path:
    return ftc_home() / "migrate" / "files" / _SAFE.sub("_", source)


def cached_copy(source: str, file_id: str) -> Path | None:
    """The local copy of a provider file, if it was downloaded before."""
    p = _folder(source) / _SAFE.sub("_", file_id)
    return p if p.is_file() else None


def download(backend: Any, info: ProviderFile, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """The local copy of ``info`` (downloaded now unless it is there). DownloadRefused when
    the provider does not hand it out; DataError when the bytes received are not the
    number the provider reports."""
    have = cached_copy(backend.name, info.id)
    if have is not None:
        return have
    folder = _folder(backend.name)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / _SAFE.sub("_", info.id)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=folder)
    os.close(fd)
    try:
        backend.download_file(info.id, Path(tmp), max_bytes=max_bytes)
        got = Path(tmp).stat().st_size
        if info.bytes is not None and got != info.bytes:
            raise DataError(f"file {info.id}: received {got:,} bytes, the provider reports {info.bytes:,}",
                            hint="Run the command again to download it anew.")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def check_own_copy(path: str | os.PathLike, info: ProviderFile, *, what: str, allow_different: bool = False) -> Path:
    """The user's copy of a provider file, checked: it exists and, where the provider
    reports a size, has exactly that many bytes (the provider publishes no checksum, so the
    size is the check). A different size is a DataError unless ``allow_different``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UsageError(f"{p}: no such file", hint=f"Give your copy of the {what} ({info.id}).")
    size = p.stat().st_size
    if info.bytes is not None and size != info.bytes and not allow_different:
        raise DataError(
            f"{p} has {size:,} bytes; the {what} the provider trained on ({info.id}, "
            f"{info.filename or 'no name'}) has {info.bytes:,}: it is not the same file",
            hint="Give the exact file that was uploaded, or pass --allow-different-data to train on this one anyway.")
    return p
