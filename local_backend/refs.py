"""``local:`` model references: a finished local job, a model folder or ``.gguf`` file, or a
base model on this machine (``local:default``, an HF id in the local cache). The core's
:func:`ftclient.modelref.parse_model_ref` hands the text after ``local:`` here
(``LocalBackend.parse_model_ref``), and a bare job id of a local job (``job_model_ref``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ftclient.errors import ConfigError, UsageError
from ftclient.modelref import ModelRef, did_you_mean, finished_model, job_ids

from .models import resolve_model

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.store import Job, Store

__all__ = ["TRAIN_META", "parse_local_ref", "local_job_ref"]

TRAIN_META = "ftc_train.json"  # written next to every locally trained model


def _adapter_base(p: Path) -> str | None:
    for name, key in ((TRAIN_META, "base_model"), ("adapter_config.json", "base_model_name_or_path")):
        f = p / name
        if f.is_file():
            try:
                v = json.loads(f.read_text(encoding="utf-8")).get(key)
            except (OSError, ValueError, AttributeError):
                v = None
            if v:
                return str(v)
    return None


def _local_path_ref(p: Path, text: str) -> ModelRef:
    p = p.expanduser().resolve()
    if p.is_dir():
        if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
            raise UsageError(f"{text}: not a model directory (no config.json or adapter_config.json)",
                             hint="Point at a directory written by `ftc train --backend local` or save_pretrained.")
        tuned = (p / "adapter_config.json").is_file() or (p / TRAIN_META).is_file()
        base = _adapter_base(p) if tuned else None
        return ModelRef("local", str(p), f"local:{p}", base_model=base if tuned else str(p), fine_tuned=tuned)
    if p.is_file() and p.suffix.lower() == ".gguf":
        return ModelRef("local", str(p), f"local:{p}", base_model=str(p), fine_tuned=False)
    raise UsageError(f"{text}: not a model directory or .gguf file")


def local_job_ref(job: "Job", store: "Store", *, refresh: bool) -> ModelRef:
    if job.backend != "local":
        raise UsageError(f"{job.id} ran on {job.backend}, not locally",
                         hint=f"Evaluate it as `{job.id}` (its fine-tuned model on {job.backend}).")
    model = finished_model(job, store, refresh=refresh)
    return ModelRef("local", str(model), f"local:{job.id}", job_id=job.id, base_model=job.model, fine_tuned=True)


def parse_local_ref(rest: str, store: "Store | None", *, refresh: bool) -> ModelRef:
    if not rest:
        raise UsageError("local: needs a job id, a model directory or a base model",
                         hint="e.g. local:ftc-20261122-a3f9c2, local:./out/final or local:default.")
    if rest == "default":
        return ModelRef("local", "default", "local:default", base_model="default", fine_tuned=False)
    p = Path(rest).expanduser()
    if p.exists():
        return _local_path_ref(p, rest)
    looks_like_path = rest.startswith((".", "/", "~", "\\")) or "\\" in rest or rest.lower().endswith(".gguf")
    if not looks_like_path and store is not None:
        try:
            job = store.get_job(rest)
        except UsageError as e:
            if "matches" in e.message and "jobs:" in e.message:
                raise
            job = None
        if job is not None:
            return local_job_ref(job, store, refresh=refresh)
    if looks_like_path:
        raise UsageError(f"local:{rest}: no such file or directory",
                         hint="Give an existing model directory (e.g. the job's output/final), or a job id.")
    if rest.startswith("ftc-"):
        raise UsageError(f"no job matches {rest!r}",
                         hint=did_you_mean(rest, job_ids(store)) + "List jobs with `ftc jobs list`.")
    # A base model by name (an HF id in the local cache).
    try:
        src = resolve_model(rest)
    except ConfigError as e:
        hint = did_you_mean(rest, job_ids(store))
        hint += "Give a finished local job id, a model directory, local:default, or an HF id already in the cache."
        raise UsageError(f"local:{rest}: not a job, a model directory or a cached base model ({e.message})",
                         hint=hint) from None
    return ModelRef("local", src.ref, f"local:{src.ref}", base_model=src.ref, fine_tuned=False)
