"""Where a model's weights are on this machine, for the stages that need them (export, serve).

:func:`model_ref_here` reads a reference as :func:`ftclient.modelref.parse_model_ref` does,
with a path on this machine taken as a model folder of the backend that runs models here.
:func:`weights_here` says which backend can run a stage on a model's weights, and on what: the
reference's own backend when it offers the stage's hook; for a provider that hands weights
out (``downloads_weights``), the backend that runs models here, on the job's newest download
(``ftc jobs download``), unpacked once beside its archive; None when the weights stay with
the provider.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .archive import model_folder, unpack_model_archive
from .backends import backend_attr, here_backend, install_line, offers
from .errors import UsageError
from .modelref import ModelRef, parse_model_ref

__all__ = ["model_ref_here", "weights_here"]

Progress = Callable[[str, "float | None"], None]


def model_ref_here(text: str, store: Any) -> ModelRef:
    """``text`` as a model reference; a path (or an existing folder) with no ``BACKEND:`` is a
    model folder of the backend that runs models here (which says when it is not there)."""
    t = (text or "").strip()
    here = here_backend()
    looks_like_path = t.startswith((".", "/", "~")) or os.sep in t
    if here and t and ":" not in t and (looks_like_path or Path(t).expanduser().exists()):
        t = f"{here}:{t}"
    return parse_model_ref(t, store=store)


def _downloaded(ref: ModelRef, store: Any, progress: Progress | None) -> Path | None:
    if store is None or not ref.job_id:
        return None
    for op in reversed(store.operations(ref.job_id, "download")):
        path = Path(str((op.response or {}).get("path") or "")) if op.state == "done" else None
        if path is None or not path.is_file():
            continue
        folder = path.with_name(path.name.split(".tar")[0] + "-unpacked")
        if folder.is_dir() and (found := model_folder(folder)) is not None:
            return found
        return unpack_model_archive(path, folder, progress)
    return None


def weights_here(ref: ModelRef, store: Any, hook: str, progress: Progress | None = None) -> tuple[str, str] | None:
    """``(backend, model)`` to call ``hook`` with for ``ref``, or None where its weights stay with
    the provider (or were not downloaded yet)."""
    if offers(ref.backend, hook):
        return ref.backend, ref.model
    if not backend_attr(ref.backend, "downloads_weights"):
        return None
    folder = _downloaded(ref, store, progress)
    if folder is None:
        return None
    here = here_backend()
    if here is None or not offers(here, hook):
        raise UsageError("running downloaded weights needs the backend that runs models on this machine",
                         hint=f"Install it: {install_line('local')}")
    return here, str(folder)
