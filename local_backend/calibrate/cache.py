"""The cache of calibrations.

A calibration is cached as JSON under ``$FTC_HOME/calibrations/`` by model, data, the
settings that change speed and this machine (not epochs nor checkpoint interval: those are
re-predicted from the measurements), for ``LocalBackend.estimate`` and ``ftc cost estimate``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ftclient.errors import ConfigError
from ftclient.fileio import sha256_file, write_json_atomic
from ftclient.paths import ftc_home

from ..models import resolve_model
from .prediction import SCHEMA, Calibration
from .spec import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.spec import JobSpec

CACHE_DIR = "calibrations"


def _model_identity(ref: str) -> dict[str, Any]:
    src = resolve_model(ref)
    ident: dict[str, Any] = {"kind": src.kind, "path": str(src.path)}
    probe = src.path if src.kind == "gguf" else src.path / "config.json"
    try:
        st = probe.stat()
        ident.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    except OSError:
        pass
    weights = sorted(src.path.glob("*.safetensors")) if src.kind != "gguf" else []
    if weights:
        st = weights[0].stat()
        ident.update(weights_size=st.st_size, weights_mtime_ns=st.st_mtime_ns)
    return ident


def machine_fingerprint() -> dict[str, Any]:
    """What identifies 'this machine' for a cached calibration (torch-free)."""
    return {"node": platform.node(), "arch": platform.machine(), "cpus": os.cpu_count(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def cache_key(spec: "JobSpec") -> str:
    """The cache key of a calibration: model, data, the settings that change speed, this machine.
    Epochs and the checkpoint interval are not in it (the prediction is re-made for them)."""
    hp, loc = spec.hyperparameters, spec.local
    lora = hp.lora
    payload = {
        "schema": SCHEMA,
        "model": _model_identity(spec.model_for("local")),
        "train": sha256_file(spec.data.train),
        "eval": sha256_file(spec.data.eval) if spec.data.eval else None,
        "method": spec.method, "adapter": spec.adapter,
        "batch_size": hp.batch_size or DEFAULT_BATCH_SIZE, "max_seq_len": hp.max_seq_len, "seed": hp.seed,
        "lora": [lora.r, lora.alpha, lora.dropout, lora.target_modules],
        "device": loc.device, "precision": loc.precision, "packing": loc.packing,
        "gradient_checkpointing": loc.gradient_checkpointing,
        "gradient_accumulation_steps": loc.gradient_accumulation_steps,
        "gpus": getattr(loc, "gpus", 1),
        "machine": machine_fingerprint(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cache_dir() -> Path:
    return ftc_home() / CACHE_DIR


def save_calibration(cal: Calibration) -> Path:
    path = cache_dir() / f"{cal.key}.json"
    write_json_atomic(path, cal.to_dict())
    return path


def load_cached(spec: "JobSpec", *, price: Optional[dict[str, Any]] = None) -> Optional[Calibration]:
    """The cached calibration of this model, data and settings on this machine, predicted for the
    spec's epochs and checkpoint interval; None when there is none (or it cannot be read)."""
    try:
        key = cache_key(spec)
    except (OSError, ConfigError):
        return None
    path = cache_dir() / f"{key}.json"
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("schema") != SCHEMA or d.get("key") != key:
            return None
        cal = Calibration.from_dict(d)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return cal.for_run(epochs=spec.hyperparameters.epochs, save_steps=spec.local.checkpoint_every, price=price)
