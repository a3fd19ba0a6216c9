"""``ftc export``: a fine-tuned model leaves ftc in a format other tools load.

:func:`export_model` resolves the model reference (an ftc job id, or ``BACKEND:PATH`` / a folder on
this machine), asks the backend that holds the weights to write the format (its
``export_model`` hook), and gives
it the facts of the model card from the job store: the base model, the training data's
sha256 and size, the epochs, the final loss and the evaluations of the model. A job of a
provider that hands weights out (``downloads_weights``) is exported from its newest download
(``ftc jobs download``), unpacked once beside the archive, by the backend that runs models on
this machine. A model whose weights stay with the provider is refused with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from . import __version__
from .backends import backend_attr, default_model_of, get_backend, here_backend
from .errors import FtcError, UsageError
from .fileio import sha256_file
from .modelref import ModelRef, existing_store
from .weights import model_ref_here, weights_here

__all__ = ["export_model", "export_formats"]

Progress = Callable[[str, "float | None"], None]


def export_formats(backend: str | None = None) -> tuple[str, ...]:
    """The formats ``backend`` (default: the one that trains on this machine) exports."""
    name = backend or here_backend()
    return tuple(backend_attr(name, "export_formats", ()) or ()) if name else ()


def _system_of(line: bytes) -> str | None:
    try:
        first = (json.loads(line).get("messages") or [None])[0]
    except (ValueError, AttributeError, TypeError):
        return None
    if isinstance(first, dict) and first.get("role") == "system" and isinstance(first.get("content"), str):
        return first["content"]
    return None


def _examples_and_system(path: Path) -> tuple[int, str | None]:
    """The number of examples in a ChatML JSONL file, and the system prompt when every example
    opens with the same one (None otherwise); read a line at a time."""
    count, systems = 0, set()
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            count += 1
            if len(systems) < 2:
                systems.add(_system_of(line))
    return count, (next(iter(systems)) if len(systems) == 1 else None)


def _data_facts(spec: Mapping[str, Any]) -> dict[str, Any]:
    data = spec.get("data") if isinstance(spec.get("data"), Mapping) else {}
    train = data.get("train")
    out: dict[str, Any] = {}
    if train and Path(str(train)).is_file():
        p = Path(str(train))
        out["data_sha256"] = sha256_file(p)
        out["examples"], out["system_prompt"] = _examples_and_system(p)
    hp = spec.get("hyperparameters") if isinstance(spec.get("hyperparameters"), Mapping) else {}
    if hp.get("epochs") is not None:
        out["epochs"] = hp["epochs"]
    for k in ("method", "adapter", "name"):
        if spec.get(k):
            out[k] = spec[k]
    return out


def _card_facts(ref: ModelRef, store: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"ftc_version": __version__, "base_model": ref.base_model if ref.fine_tuned else None,
                            "job_id": ref.job_id}
    if store is None:
        return info
    if ref.job_id:
        try:
            job = store.get_job(ref.job_id)
        except FtcError:
            job = None
        if job is not None:
            info.update(_data_facts(job.spec or {}))
            info["base_model"] = job.model or info["base_model"]
            if job.provider_job_id:
                try:
                    info["final_loss"] = get_backend(job.backend).status(job.provider_job_id).loss
                except FtcError:
                    pass
    evals = []
    for run in store.list_eval_runs():
        s = run.summary or {}
        if (ref.job_id and s.get("job_id") == ref.job_id) or run.model_ref == ref.canonical:
            metrics = s.get("metrics") or {}
            evals.append({"run_id": run.id, "data": Path(run.data_path).name, "metric": s.get("metric"),
                          "score": metrics.get("score"), "examples": s.get("completed")})
    info["evals"] = evals
    if info.get("base_model") == "default":  # the spec's alias: name the model it stands for
        info["base_model"] = default_model_of(ref.backend) or "default"
    return info


def export_model(model: str, fmt: str, out: "str | os.PathLike", *, quant: str | None = None, store: Any = None,
           progress: Progress | None = None) -> dict[str, Any]:
    """Write ``model`` (an ftc job id, ``BACKEND:PATH`` or a model folder here) as ``fmt`` into
    the new folder ``out``; returns what was written (``format``, ``out``, ``files``, ``bytes``...).

    UsageError (exit 2) for a model whose weights ftc cannot reach, an unknown format, or an
    ``out`` that exists and is not empty; ConfigError for too little disk space. Nothing is
    written in those cases, and a failed or interrupted export leaves no partial folder."""
    with existing_store(store) as st:
        ref = model_ref_here(model, st)
        backend = ref.backend
        found = weights_here(ref, st, "export_model", progress)
        if found is None:
            display = backend_attr(backend, "display") or backend
            if backend_attr(backend, "downloads_weights"):
                hint = (f"Download the weights first (`ftc jobs download {ref.job_id or 'JOB'} --checkpoint "
                        "merged`), then export the job again: ftc unpacks the archive.")
            else:
                hint = "Its weights never leave the provider: evaluate or chat with it there, or train an open model."
            raise UsageError(f"cannot export {ref.canonical}: {display} keeps the model's weights", hint=hint)
        info = _card_facts(ref, st)
    backend, model = found
    return get_backend(backend).export_model(model, fmt, Path(out), quant=quant, info=info, progress=progress)
