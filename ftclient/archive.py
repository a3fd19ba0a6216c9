"""A provider's model archive (``ftc jobs download``) unpacked into a model folder.

A provider that hands out fine-tuned weights sends them as a compressed tar file (Together:
``.tar.zst``). :func:`unpack_model_archive` streams it through the decompressor (zstandard,
gzip or none, told by the file's first bytes) into :mod:`tarfile` with its ``data`` extraction
filter, which refuses absolute paths, paths that leave the folder, links out of it and device
files, so an archive cannot write outside its folder. The folder appears whole or not at all
(built in a hidden folder beside it and renamed), the free disk space is checked first, and
the model folder inside (the one holding ``config.json`` or ``adapter_config.json``, nearest
the top) is returned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from .backends import install_line
from .errors import ConfigError, UsageError

__all__ = ["unpack_model_archive", "model_folder"]

_ZSTD, _GZIP = b"\x28\xb5\x2f\xfd", b"\x1f\x8b"
#: Model weights barely compress: the unpacked size is taken as this many times the archive's.
_GROWTH = 1.5
_MARKERS = ("config.json", "adapter_config.json")


def model_folder(root: Path) -> Path | None:
    """The folder under ``root`` (``root`` included) that holds a model, nearest the top."""
    found = sorted((p.parent for name in _MARKERS for p in root.rglob(name)), key=lambda p: (len(p.parts), str(p)))
    return found[0] if found else None


@contextlib.contextmanager
def _decompressed(archive: Path) -> Iterator[IO[bytes]]:
    with open(archive, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic.startswith(_ZSTD):
            try:
                import zstandard
            except ImportError:
                raise ConfigError(f"{archive.name} is zstandard-compressed and the zstandard package is not installed",
                                  hint=f"Install it: {install_line('hosted', ['zstandard'])}") from None
            with zstandard.ZstdDecompressor().stream_reader(raw) as stream:
                yield stream
        elif magic.startswith(_GZIP):
            import gzip

            with gzip.GzipFile(fileobj=raw) as stream:
                yield stream
        else:
            yield raw


def _damaged() -> tuple[type[BaseException], ...]:
    """What reading a damaged archive raises (the decompressor's own error among them)."""
    errors: list[type[BaseException]] = [tarfile.TarError, EOFError, ValueError]
    with contextlib.suppress(ImportError):
        import zstandard

        errors.append(zstandard.ZstdError)
    return tuple(errors)


def unpack_model_archive(archive: "str | os.PathLike", dest: "str | os.PathLike",
                         progress: Callable[[str, "float | None"], None] | None = None) -> Path:
    """Unpack ``archive`` into the new folder ``dest``; return the model folder inside it.

    UsageError when the file is not a tar archive (compressed or not), is damaged, holds a
    member the ``data`` filter refuses, or holds no model; ConfigError for too little disk
    space. In every such case, and on Ctrl-C, ``dest`` is left as it was."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise UsageError(f"{archive}: no such archive", hint="Download it again: ftc jobs download JOB")
    if dest.exists():
        raise UsageError(f"{dest} exists: nothing was unpacked", hint="Remove it, or unpack somewhere else.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    need, free = int(archive.stat().st_size * _GROWTH), shutil.disk_usage(dest.parent).free
    if free < need:
        raise ConfigError(f"not enough disk space to unpack {archive.name}: it needs about {need / 2**30:.2f} GiB, "
                          f"{free / 2**30:.2f} GiB are free. Nothing was unpacked.")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        if progress is not None:
            progress(f"unpacking {archive.name}", None)
        try:
            with _decompressed(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                tar.extractall(tmp, filter="data")
        except OSError as e:
            if e.errno is None:  # a damaged gzip stream
                raise UsageError(f"{archive.name} is not a model archive ftc can unpack: {e}",
                                 hint="Download it again: ftc jobs download JOB") from None
            raise ConfigError(f"cannot unpack {archive.name} into {dest.parent}: {e.strerror}. "
                              "Nothing was unpacked.") from None
        except _damaged() as e:
            raise UsageError(f"{archive.name} is not a model archive ftc can unpack: {e}",
                             hint="Download it again: ftc jobs download JOB") from None
        found = model_folder(tmp)
        if found is None:
            raise UsageError(f"{archive.name} holds no model (no config.json or adapter_config.json)")
        os.rename(tmp, dest)
        return dest / found.relative_to(tmp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
