"""``ftc migrate scan``: an account's fine-tuned models, their data and the days they have left.

For every fine-tuning job of the source: its model, base model, dates, method and
hyperparameters, trained tokens, and its training and validation files (size, example
count, whether the provider hands the file out). The shutdown date comes from the price
catalogue's ``inference_shutdown`` of the base model, so days left are counted offline
and a model past its date is listed as shut down.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ConfigError, UsageError
from ..fileio import count_records
from ..prices import load_catalogue
from .files import cached_copy, download
from .source import DownloadRefused, PastFineTune, ProviderFile, migration_sources, source_backend, split_model_ref

__all__ = ["FileReport", "FineTuneReport", "ScanResult", "scan_fine_tunes", "find_fine_tune"]

SERVING = "serving"
SHUT_DOWN = "shut down"
NO_MODEL = "no model"


@dataclass
class FileReport:
    """One training or validation file of a fine-tune, as far as ftc can see it."""

    id: str
    filename: str | None
    bytes: int | None
    exists: bool
    downloadable: bool | None  # None: not asked (the file is gone)
    examples: int | None  # known once a copy is on disk
    local_copy: str | None
    refusal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class FineTuneReport:
    """One fine-tuning job with what a migration needs to know of it."""

    fine_tune: PastFineTune
    training: FileReport | None
    validation: FileReport | None
    shutdown: _dt.date | None
    train_cutoff: _dt.date | None
    days_left: int | None
    state: str  # serving | shut down | no model
    inference_per_1m: tuple[float, float] | None  # (input, output) USD, from the catalogue
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str | None:
        return self.fine_tune.fine_tuned_model

    @property
    def ref(self) -> str | None:
        """``source:model``, the reference ``ftc eval`` takes."""
        return f"{self.fine_tune.source}:{self.model}" if self.model else None

    def to_dict(self) -> dict[str, Any]:
        ft = self.fine_tune
        return {
            "model": ft.fine_tuned_model,
            "ref": self.ref,
            "source": ft.source,
            "base_model": ft.base_model,
            "job_id": ft.job_id,
            "status": ft.status,
            "created_at": ft.created_at.isoformat() if ft.created_at else None,
            "finished_at": ft.finished_at.isoformat() if ft.finished_at else None,
            "method": ft.method,
            "hyperparameters": dict(ft.hyperparameters),
            "trained_tokens": ft.trained_tokens,
            "suffix": ft.suffix,
            "error": ft.error,
            "training_file": self.training.to_dict() if self.training else None,
            "validation_file": self.validation.to_dict() if self.validation else None,
            "state": self.state,
            "shutdown": self.shutdown.isoformat() if self.shutdown else None,
            "train_cutoff": self.train_cutoff.isoformat() if self.train_cutoff else None,
            "days_left": self.days_left,
            "inference_usd_per_1m": ({"input": self.inference_per_1m[0], "output": self.inference_per_1m[1]}
                                     if self.inference_per_1m else None),
            "notes": list(self.notes),
        }


@dataclass
class ScanResult:
    source: str
    today: _dt.date
    fine_tunes: list[FineTuneReport]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "today": self.today.isoformat(),
                "fine_tunes": [f.to_dict() for f in self.fine_tunes]}


def _file_report(backend: Any, file_id: str | None, *, fetch: bool) -> FileReport | None:
    if not file_id:
        return None
    info: ProviderFile = backend.file_info(file_id)
    if not info.exists:
        return FileReport(id=file_id, filename=None, bytes=None, exists=False, downloadable=None, examples=None,
                          local_copy=None, refusal="the provider no longer has this file")
    copy = cached_copy(backend.name, file_id)
    refusal = None
    if copy is None and fetch:
        try:
            copy = download(backend, info)
        except DownloadRefused as e:
            refusal = e.message
    return FileReport(id=file_id, filename=info.filename, bytes=info.bytes, exists=True,
                      downloadable=True if copy is not None else (False if refusal else None),
                      examples=count_records(copy) if copy is not None else None,
                      local_copy=str(copy) if copy is not None else None, refusal=refusal)


def _report(backend: Any, ft: PastFineTune, cat: Any, today: _dt.date, *, fetch: bool) -> FineTuneReport:
    notes: list[str] = []
    shutdown = cutoff = None
    price = None
    try:
        entry = cat.model(f"{ft.source}:{ft.base_model}")
        shutdown, cutoff = entry.inference_shutdown, entry.train_cutoff
        if entry.inference_input_per_1m is not None and entry.inference_output_per_1m is not None:
            price = (float(entry.inference_input_per_1m), float(entry.inference_output_per_1m))
    except ConfigError:
        notes.append(f"{ft.base_model} is not in the price catalogue: no shutdown date or price known")
    if not ft.fine_tuned_model:
        state = NO_MODEL
    elif shutdown is not None and today >= shutdown:
        state = SHUT_DOWN
    else:
        state = SERVING
    days = (shutdown - today).days if shutdown is not None else None
    training = _file_report(backend, ft.training_file, fetch=fetch)
    validation = _file_report(backend, ft.validation_file, fetch=fetch)
    return FineTuneReport(fine_tune=ft, training=training, validation=validation, shutdown=shutdown,
                          train_cutoff=cutoff, days_left=days, state=state, inference_per_1m=price, notes=notes)


def scan_fine_tunes(source: str | None = None, *, today: _dt.date | None = None, prices: Any = None, client: Any = None,
         download_files: bool = True, models: list[str] | None = None,
         on_progress: Callable[[int, int, str], None] | None = None) -> ScanResult:
    """Every fine-tune of ``source`` (default: the one installed migration source).

    ``download_files``: fetch a local copy of each file the provider hands out (once;
    later scans read it from disk) to count its examples. ``models``: only these
    fine-tuned models. ``on_progress(done, total, job_id)`` after each job."""
    today = today or _dt.date.today()
    backend = source_backend(source, client=client)
    cat = prices if hasattr(prices, "model") else load_catalogue(prices, today=today)
    jobs = backend.fine_tunes()
    if models is not None:
        wanted = set(models)
        jobs = [j for j in jobs if j.fine_tuned_model in wanted]
    out = []
    for i, ft in enumerate(jobs, 1):
        out.append(_report(backend, ft, cat, today, fetch=download_files))
        if on_progress is not None:
            on_progress(i, len(jobs), ft.job_id)
    return ScanResult(source=backend.name, today=today, fine_tunes=out)


def find_fine_tune(model: str, *, today: _dt.date | None = None, prices: Any = None, client: Any = None,
                   download_files: bool = True) -> FineTuneReport:
    """The fine-tune that produced ``model`` (``ft:...`` or ``source:ft:...``), its files
    fetched when the provider hands them out; UsageError naming the account's models when
    there is none."""
    today = today or _dt.date.today()
    source, name = split_model_ref(model, migration_sources())
    backend = source_backend(source, client=client)
    jobs = backend.fine_tunes()
    for ft in jobs:
        if ft.fine_tuned_model == name:
            cat = prices if hasattr(prices, "model") else load_catalogue(prices, today=today)
            return _report(backend, ft, cat, today, fetch=download_files)
    known = [j.fine_tuned_model for j in jobs if j.fine_tuned_model]
    raise UsageError(f"no fine-tuned model {name!r} in this {backend.name} account",
                     hint=("Its fine-tuned models: " + ", ".join(known[:8]) + (" ..." if len(known) > 8 else ""))
                     if known else "This account has no fine-tuned models (`ftc migrate scan` lists its jobs).")
