"""Estimates of a local training run that hold: a few real steps here, then the whole run predicted.

    cal = calibrate(spec, steps=8)     # the real trainer (train.build_trainer), a few optimizer steps
    cal.prediction.total_s             # the full run's wall time, in parts that add up
    cal.cost                           # hours x $/h, when a price is known
    load_cached(spec)                  # the last calibration of this model, data and settings here

**Measured**, each on its own: importing the training libraries; loading the model; building
the trainer (reading and tokenizing the data, wrapping the model with the adapter); the
trainer's start until its first step; the first optimizer step(s) (warm-up); every later
step (seconds; non-padding tokens from the trainer's own ``num_input_tokens_seen``; token
positions fed, padding included, from a forward pre-hook on the model);
one checkpoint save and, with eval data, one evaluation (both done by the Trainer itself,
at the end of the short run); the final save as :func:`train.train` writes it.

**Counted exactly**, as the Trainer counts: rows = the trainer's processed training set
(TRL drops SFT rows left without a trained token by truncation; packing changes the rows);
micro-batches per epoch = ceil(rows / batch) (floor with ``dataloader_drop_last``); optimizer
steps per epoch = ceil(micro-batches / gradient accumulation), at least 1; steps = ceil(epochs
x that). Tokens = the trainer's tokenization of every row (truncated to ``max_seq_len``).
Positions fed (padding included) = the expectation over random shuffles of the rows into
batches padded to their longest row (exact for padding-free packing).
Checkpoint saves = ceil(steps / checkpoint_every) (every N steps and at the end); evaluations
(with eval data) = the same + 1 (``train`` evaluates once more at the end).

**Predicted** wall time = setup (imports + model load + trainer build + start) + the measured
warm-up and the other measured steps + the rest of the run + saves x one save + evaluations x
one evaluation + the final save + the trainer's finish. The rest of the run, for SFT: the
remaining positions fed x the steady seconds per position -- a padded batch costs what its
positions cost, so batches with longer rows, and a short last batch, are priced as they are
(on 2 CPU cores, seconds per position varied half as much from step to step as seconds per
token); for DPO (whose batches are padded in parts): the remaining steps x the steady seconds
per step. The calibration runs the same first batches as the real run (same seed), which can
be longer or shorter than the average: that is why the rest is not simply steps x s/step.

A calibration is cached as JSON under ``$FTC_HOME/calibrations/`` by model, data, the
settings that change speed and this machine (not epochs nor checkpoint interval: those are
re-predicted from the measurements), for ``LocalBackend.estimate`` and ``ftc cost estimate``.

This module imports torch/transformers only inside :func:`calibrate`. The token counting
for offline estimates (:func:`offline_counts`) reads the model's ``tokenizer.json`` with the
``tokenizers`` library and renders its chat template with jinja2, as transformers does,
without importing torch.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ftclient.errors import ConfigError, UsageError
from ftclient.fileio import count_records, sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.spec import JobSpec

SCHEMA = 1
CACHE_DIR = "calibrations"
DEFAULT_STEPS = 8
WARMUP_STEPS = 1
NOISY_SPREAD = 1.5  # steady steps whose cost per position varies more than this: the machine was busy
DEFAULT_BATCH_SIZE = 8  # = train.DEFAULT_BATCH_SIZE (checked by the tests)

ProgressFn = Callable[[str, Optional[int], Optional[int]], None]


# ----------------------------------------------------------------------------- step counting

def micro_batches_per_epoch(rows: int, batch_size: int, *, drop_last: bool = False) -> int:
    """Batches the Trainer's dataloader yields per epoch (one device)."""
    if rows < 0 or batch_size < 1:
        raise UsageError(f"rows must be >= 0 and batch size >= 1 (got {rows}, {batch_size})")
    return rows // batch_size if drop_last else -(-rows // batch_size)


def steps_per_epoch(rows: int, batch_size: int, gradient_accumulation_steps: int = 1, *,
                    drop_last: bool = False) -> int:
    """Optimizer steps per epoch, as ``Trainer.set_initial_training_values`` computes them."""
    n = micro_batches_per_epoch(rows, batch_size, drop_last=drop_last)
    a = max(1, int(gradient_accumulation_steps))
    return max(n // a + int(n % a > 0), 1)


def count_optimizer_steps(rows: int, batch_size: int, gradient_accumulation_steps: int = 1, epochs: float = 1, *,
                          drop_last: bool = False) -> int:
    """The Trainer's ``max_steps`` for ``epochs`` over ``rows`` (0 when the dataloader is empty)."""
    if micro_batches_per_epoch(rows, batch_size, drop_last=drop_last) == 0:
        return 0
    return math.ceil(epochs * steps_per_epoch(rows, batch_size, gradient_accumulation_steps, drop_last=drop_last))


def checkpoint_saves(max_steps: int, save_steps: int) -> int:
    """Checkpoints a run saves: every ``save_steps`` steps and at the last step."""
    return -(-max_steps // max(1, save_steps)) if max_steps > 0 else 0


def evaluations(max_steps: int, save_steps: int, has_eval: bool) -> int:
    """Evaluations a run makes with eval data: with each checkpoint (at the end too) + train()'s final one."""
    return checkpoint_saves(max_steps, save_steps) + 1 if has_eval and max_steps > 0 else 0


# ----------------------------------------------------------------------------- results

@dataclass
class Measurements:
    """What the short run measured on this machine (seconds)."""

    imports_s: float
    imports_measured: bool  # False: the libraries were already imported in this process
    model_load_s: float
    trainer_build_s: float
    trainer_start_s: float
    step_seconds: list[float]
    step_tokens: list[int]
    warmup_steps: int
    checkpoint_save_s: Optional[float]
    eval_s: Optional[float]
    final_save_s: float
    finish_s: float
    conversion_s: Optional[float] = None  # one-time GGUF conversion (not part of later runs)
    step_positions: list[int] = field(default_factory=list)  # token positions fed (padding included)

    @property
    def steady(self) -> tuple[list[float], list[int]]:
        w = self.warmup_used
        return self.step_seconds[w:], self.step_tokens[w:]

    @property
    def warmup_used(self) -> int:
        """Warm-up steps actually set apart (all but one when the run was shorter)."""
        return max(0, min(self.warmup_steps, len(self.step_seconds) - 1))

    @property
    def seconds_per_step(self) -> float:
        t, _ = self.steady
        return sum(t) / len(t) if t else 0.0

    @property
    def tokens_per_step(self) -> float:
        _, x = self.steady
        return sum(x) / len(x) if x else 0.0

    @property
    def seconds_per_token(self) -> Optional[float]:
        t, x = self.steady
        return sum(t) / sum(x) if t and sum(x) > 0 else None

    @property
    def seconds_per_position(self) -> Optional[float]:
        """Steady seconds per token position fed (padding included): what a padded batch costs."""
        if len(self.step_positions) != len(self.step_seconds):
            return None
        w = self.warmup_used
        t, x = self.step_seconds[w:], self.step_positions[w:]
        return sum(t) / sum(x) if t and sum(x) > 0 else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        spt = self.seconds_per_token
        d.update(seconds_per_step=self.seconds_per_step, tokens_per_step=self.tokens_per_step,
                 tokens_per_second=(1.0 / spt) if spt else None, seconds_per_position=self.seconds_per_position,
                 warmup_used=self.warmup_used)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Measurements":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class DataCounts:
    """The training data as the trainer sees it."""

    examples: int  # records in the file
    rows: int  # rows of the trainer's processed training set (after TRL's drops / packing)
    tokens_per_epoch: int  # non-padding tokens of those rows
    basis: str
    exact: bool = True
    eval_examples: int = 0
    # token positions fed per epoch, padding included: expected over the random batches (or exact
    # when nothing is padded); None when not known (offline counts, DPO)
    positions_per_epoch: Optional[float] = None
    positions_basis: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Prediction:
    """The full run's wall time, in parts that add up to ``total_s``."""

    optimizer_steps: int
    tokens: int
    checkpoint_saves: int
    evaluations: int
    setup_s: float
    warmup_s: float
    steps_s: float
    checkpoints_s: float
    evaluations_s: float
    final_save_s: float
    finish_s: float
    total_s: float
    steps_basis: str

    @property
    def hours(self) -> float:
        return self.total_s / 3600.0

    def parts(self) -> dict[str, float]:
        return {"setup_s": self.setup_s, "warmup_s": self.warmup_s, "steps_s": self.steps_s,
                "checkpoints_s": self.checkpoints_s, "evaluations_s": self.evaluations_s,
                "final_save_s": self.final_save_s, "finish_s": self.finish_s}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hours"] = self.hours
        return d


@dataclass
class Settings:
    """The run's settings that the prediction needs (from the plan)."""

    method: str
    adapter: str
    base_model: str
    device: str
    precision: str
    model_dtype: str
    batch_size: int
    gradient_accumulation_steps: int
    epochs: int
    max_seq_len: int
    packing: bool
    gradient_checkpointing: bool
    save_steps: int
    drop_last: bool = False
    has_eval: bool = False
    lora_r: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def predict(m: Measurements, counts: DataCounts, s: Settings) -> Prediction:
    """The full run's wall time from the measurements (a pure function: re-run for other epochs
    or checkpoint intervals)."""
    steps = count_optimizer_steps(counts.rows, s.batch_size, s.gradient_accumulation_steps, s.epochs,
                                  drop_last=s.drop_last)
    keep = 1.0
    if s.drop_last and counts.rows:
        keep = micro_batches_per_epoch(counts.rows, s.batch_size, drop_last=True) * s.batch_size / counts.rows
    tokens = round(counts.tokens_per_epoch * s.epochs * keep)
    k = len(m.step_seconds)
    w = m.warmup_used
    setup = m.imports_s + m.model_load_s + m.trainer_build_s + m.trainer_start_s
    warmup = sum(m.step_seconds[:min(w, steps)])
    spt = m.seconds_per_token
    spp = m.seconds_per_position
    if steps <= k:
        rest = sum(m.step_seconds[w:steps]) if steps > w else 0.0
        basis = f"all {steps} steps measured"
    elif s.method == "sft" and spp is not None and counts.positions_per_epoch:
        remaining = max(counts.positions_per_epoch * s.epochs - sum(m.step_positions), 0.0)
        rest = sum(m.step_seconds[w:]) + remaining * spp
        basis = (f"{k - w} measured steps + the remaining ~{remaining:,.0f} token positions fed (padding "
                 f"included) x {spp * 1000:.3g} ms/position (steady: {m.seconds_per_step:.3g} s/step at "
                 f"{m.tokens_per_step:,.0f} tokens/step)")
    elif s.method == "sft" and spt is not None and tokens > 0:
        remaining_tokens = max(tokens - sum(m.step_tokens), 0)
        rest = sum(m.step_seconds[w:]) + remaining_tokens * spt
        basis = (f"{k - w} measured steps + the remaining {remaining_tokens:,} tokens x {spt * 1000:.3g} ms/token "
                 f"(steady: {m.seconds_per_step:.3g} s/step at {m.tokens_per_step:,.0f} tokens/step)")
    else:
        rest = sum(m.step_seconds[w:]) + (steps - k) * m.seconds_per_step
        basis = f"{k - w} measured steps + the remaining {steps - k} steps x {m.seconds_per_step:.3g} s/step (steady)"
    saves = checkpoint_saves(steps, s.save_steps)
    evals = evaluations(steps, s.save_steps, s.has_eval)
    ckpt = saves * (m.checkpoint_save_s or 0.0)
    ev = evals * (m.eval_s or 0.0)
    total = setup + warmup + rest + ckpt + ev + m.final_save_s + m.finish_s
    return Prediction(optimizer_steps=steps, tokens=tokens, checkpoint_saves=saves, evaluations=evals,
                      setup_s=setup, warmup_s=warmup, steps_s=rest, checkpoints_s=ckpt, evaluations_s=ev,
                      final_save_s=m.final_save_s, finish_s=m.finish_s, total_s=total, steps_basis=basis)


@dataclass
class Calibration:
    """A calibrated estimate of one local training run on this machine."""

    key: str
    created_at: str
    model: str
    model_source: str
    data: str
    device: str
    device_name: str
    precision: str
    settings: Settings
    counts: DataCounts
    measured: Measurements
    prediction: Prediction
    calibration_steps: int
    calibration_wall_s: float
    price: Optional[dict[str, Any]] = None
    cost: Optional[dict[str, Any]] = None
    notes: list[str] = field(default_factory=list)

    @property
    def cost_usd(self) -> Optional[float]:
        return None if self.cost is None else self.cost.get("cost_usd")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "key": self.key, "created_at": self.created_at, "model": self.model,
            "model_source": self.model_source, "data": self.data, "device": self.device,
            "device_name": self.device_name, "precision": self.precision, "settings": self.settings.to_dict(),
            "counts": self.counts.to_dict(), "measured": self.measured.to_dict(),
            "prediction": self.prediction.to_dict(), "calibration_steps": self.calibration_steps,
            "calibration_wall_s": self.calibration_wall_s, "price": self.price, "cost": self.cost,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        settings = Settings.from_dict(d["settings"])
        counts = DataCounts(**d["counts"])
        measured = Measurements.from_dict(d["measured"])
        return cls(key=d["key"], created_at=d["created_at"], model=d["model"], model_source=d["model_source"],
                   data=d["data"], device=d["device"], device_name=d["device_name"], precision=d["precision"],
                   settings=settings, counts=counts, measured=measured, prediction=predict(measured, counts, settings),
                   calibration_steps=d["calibration_steps"], calibration_wall_s=d["calibration_wall_s"],
                   price=d.get("price"), cost=d.get("cost"), notes=list(d.get("notes") or []))

    def for_run(self, *, epochs: Optional[int] = None, save_steps: Optional[int] = None,
                price: Optional[dict[str, Any]] = None) -> "Calibration":
        """The same measurements, predicted for other epochs / checkpoint interval / price."""
        from dataclasses import replace

        s = replace(self.settings, epochs=epochs or self.settings.epochs, save_steps=save_steps or self.settings.save_steps)
        pred = predict(self.measured, self.counts, s)
        return replace(self, settings=s, prediction=pred, price=price, cost=_cost(pred.total_s, price))


def _cost(seconds: float, price: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if not price:
        return None
    from ftclient.cost import local_training_cost

    return local_training_cost(seconds, price)


# ----------------------------------------------------------------------------- specs

def local_model_name(model_ref: str) -> str:
    """``local:MODEL`` -> ``MODEL`` (``local:`` alone -> ``default``)."""
    ref = (model_ref or "").strip()
    if ref.lower().startswith("local:"):
        ref = ref[len("local:"):]
    return ref.strip() or "default"


def spec_for(data: "str | os.PathLike", model: Optional[str] = None, *, spec: Optional["JobSpec"] = None,
             epochs: Optional[int] = None, method: Optional[str] = None, adapter: Optional[str] = None,
             batch_size: Optional[int] = None, max_seq_len: Optional[int] = None,
             eval_data: "str | os.PathLike | None" = None) -> "JobSpec":
    """A job spec for a local run on ``data``: ``spec`` (if given) with the given values put over it."""
    from ftclient.spec import parse_spec

    if spec is not None:
        d = spec.model_dump(mode="json")
    else:
        d = {"name": "cost-estimate", "data": {"train": str(data)}}
    d.setdefault("data", {})["train"] = str(Path(data).expanduser().resolve())
    if eval_data is not None:
        d["data"]["eval"] = str(Path(eval_data).expanduser().resolve())
    hp = d.setdefault("hyperparameters", {})
    if model is not None:
        d["base_model"] = local_model_name(model)
        if d.get("local", {}).get("model"):
            d["local"]["model"] = None
    if method is not None:
        d["method"] = method.lower()
    if adapter is not None:
        d["adapter"] = adapter.lower()
    if epochs is not None:
        hp["epochs"] = epochs
    if batch_size is not None:
        hp["batch_size"] = batch_size
    if max_seq_len is not None:
        hp["max_seq_len"] = max_seq_len
    return parse_spec(d, source="local estimate")


# ----------------------------------------------------------------------------- cache

def _model_identity(ref: str) -> dict[str, Any]:
    from .models import resolve_model

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
    from ftclient.paths import ftc_home

    return ftc_home() / CACHE_DIR


def save_calibration(cal: Calibration) -> Path:
    from ftclient.fileio import write_json_atomic

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


# ----------------------------------------------------------------------------- offline token counts

def tokenizer_folder(model_ref: str) -> Optional[Path]:
    """A folder with the model's ``tokenizer.json``, found without loading anything (None when
    there is none yet: a GGUF model before its one-time conversion or tokenizer extraction,
    :func:`ftclient.local_backend.models.tokenizer_dir`)."""
    from ftclient.paths import ftc_home

    from .models import _COMPLETE, TOKENIZERS_DIR, resolve_model

    src = resolve_model(model_ref)
    if src.kind == "gguf":
        for d in (src.cache_dir, ftc_home() / TOKENIZERS_DIR / src.name):
            if d is not None and (d / _COMPLETE).is_file() and (d / "tokenizer.json").is_file():
                return d
        return None
    return src.path if (src.path / "tokenizer.json").is_file() else None


def offline_counter(model_ref: str):
    """The token counter for a local model, torch-free: exact (its tokenizer.json + chat
    template) when on disk, else the labelled approximation of ``ftclient.tokens``."""
    from ftclient.tokens import ApproxCounter, light_counter

    from .models import resolve_model

    src = resolve_model(model_ref)
    folder = tokenizer_folder(model_ref)
    if folder is None:
        reason = ("its tokenizer is read from the GGUF file once, not done yet "
                  "(`ftc data validate --provider local --model ...`, a dry run, calibration or "
                  "training does it)" if src.kind == "gguf"
                  else "no tokenizer.json in the model folder")
    else:
        c = light_counter(folder, src.ref)
        if not isinstance(c, str):
            return c
        reason = c
    return ApproxCounter(f"local:{src.name}", reason=reason)


def offline_counts(spec: "JobSpec", records: Optional[list] = None, *, counter: Any = None) -> DataCounts:
    """Rows and tokens per epoch the trainer will see, from the data and the model's tokenizer,
    without torch. SFT: each example's chat-template tokens, truncated to ``max_seq_len``; an
    example whose prompt alone fills ``max_seq_len`` is dropped (TRL drops rows with no trained
    token). DPO: prompt once + both replies. Packing (CUDA) is not modelled here."""
    from ftclient.tokens import as_records

    recs = records if records is not None else as_records(spec.data.train)
    counter = counter if counter is not None else offline_counter(spec.model_for("local"))
    total, prompt, _ = counter.count_split(recs)
    cap = spec.hyperparameters.max_seq_len
    if spec.method == "sft":
        kept = [(t, p) for t, p in zip(total, prompt) if p < cap]
        tokens = sum(min(t, cap) for t, _ in kept)
        rows = len(kept)
    else:
        tokens, rows = sum(total), len(total)
    basis = counter.basis
    if rows != len(recs):
        basis += f"; {len(recs) - rows} example(s) dropped: the prompt alone fills max_seq_len {cap}"
    return DataCounts(examples=len(recs), rows=rows, tokens_per_epoch=tokens, basis=basis,
                      exact=bool(counter.exact), eval_examples=_count_lines(spec.data.eval) if spec.data.eval else 0)


# ----------------------------------------------------------------------------- calibrate

def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"{os.cpu_count()}-core CPU ({torch.get_num_threads()} torch threads)"


def expected_positions(lengths: Sequence[int], batch_size: int, *, drop_last: bool = False, rounds: int = 0,
                       seed: int = 0) -> float:
    """Token positions an epoch feeds when rows are shuffled into batches padded to their longest
    row (what the SFT collator does): the mean over ``rounds`` random shuffles (default: enough
    for about two million rows in all, 5 to 50)."""
    import numpy as np

    n = len(lengths)
    if n == 0:
        return 0.0
    lens = np.asarray(lengths, dtype=np.int64)
    nb = n // batch_size if drop_last else -(-n // batch_size)
    if nb == 0:
        return 0.0
    rounds = rounds or int(min(50, max(5, 2_000_000 // n)))
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(rounds):
        perm = lens[rng.permutation(n)]
        full = perm[: (n // batch_size) * batch_size].reshape(-1, batch_size)
        epoch = float(full.max(axis=1).sum() * batch_size)
        rest = perm[(n // batch_size) * batch_size:]
        if len(rest) and not drop_last:
            epoch += float(rest.max() * len(rest))
        total += epoch
    return total / rounds


def _trainer_counts(trainer: Any, plan: Any, examples: int, eval_examples: int) -> DataCounts:
    ds = trainer.train_dataset
    cols = set(ds.column_names or [])
    cap = plan.max_seq_len
    if "input_ids" in cols:
        tokens = sum(min(len(x), cap) for x in ds["input_ids"])
        basis = "exact: the trainer's own tokenization of every row (truncated to max_seq_len)"
    elif {"prompt_ids", "chosen_ids", "rejected_ids"} <= cols:
        tokens = sum(2 * len(p) + len(c) + len(r) for p, c, r in zip(ds["prompt_ids"], ds["chosen_ids"],
                                                                         ds["rejected_ids"]))
        basis = "exact: the trainer's own tokenization (prompt twice + chosen + rejected, as it feeds them)"
    else:  # pragma: no cover - another trainer layout
        tokens, basis = 0, "unknown: the trainer's data has no token ids"
    if plan.packing:
        basis += f"; {len(ds):,} packed rows of up to {cap} tokens"
    elif len(ds) != examples:
        basis += f"; {examples - len(ds)} example(s) dropped by the trainer (nothing left to train on after truncation)"
    positions, pos_basis = None, ""
    if "input_ids" in cols:
        if plan.padding_free:
            positions, pos_basis = float(tokens), "padding-free: every position is a token"
        else:
            lengths = [min(len(x), cap) for x in ds["input_ids"]]
            args = trainer.args
            positions = expected_positions(lengths, int(args.per_device_train_batch_size),
                                           drop_last=bool(args.dataloader_drop_last), seed=plan.seed)
            pos_basis = ("expected over random batches, each padded to its longest row: "
                         f"~{positions:,.0f} positions an epoch for {tokens:,} tokens")
    return DataCounts(examples=examples, rows=len(ds), tokens_per_epoch=int(tokens), basis=basis,
                      exact=tokens > 0, eval_examples=eval_examples, positions_per_epoch=positions,
                      positions_basis=pos_basis)


def _timer_callback(clock: Callable[[], float], sync: Callable[[], None], say: ProgressFn, fed: list[int]):
    """A TrainerCallback that notes when training begins, each step ends (with the tokens seen so
    far), the evaluation and the checkpoint save end."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.total: Optional[int] = None
            self.has_eval = False
            self.begin: Optional[float] = None
            self.seen0 = 0
            self.ends: list[float] = []
            self.seen: list[int] = []
            self.fed_at: list[int] = []  # len(fed) at each step end
            self.evaluated: Optional[float] = None
            self.saved: Optional[float] = None

        def on_train_begin(self, args, state, control, **kw):
            sync()
            self.begin = clock()
            self.seen0 = int(state.num_input_tokens_seen or 0)
            say("step", 0, self.total)

        def on_step_end(self, args, state, control, **kw):
            sync()
            self.ends.append(clock())
            self.seen.append(int(state.num_input_tokens_seen or 0))
            self.fed_at.append(len(fed))
            say("step", state.global_step, self.total)
            if state.global_step >= state.max_steps:
                say("evaluating" if self.has_eval else "saving a checkpoint", None, None)

        def on_evaluate(self, args, state, control, **kw):
            sync()
            self.evaluated = clock()
            say("saving a checkpoint", None, None)

        def on_save(self, args, state, control, **kw):
            sync()
            self.saved = clock()

    return Timer()


def calibrate(spec: "JobSpec", *, steps: int = DEFAULT_STEPS, warmup_steps: int = WARMUP_STEPS,
              price: Optional[dict[str, Any]] = None, progress: Optional[ProgressFn] = None, cache: bool = True,
              devices: Any = None, clock: Callable[[], float] = time.perf_counter) -> Calibration:
    """Run the first ``steps`` optimizer steps of the local run ``spec`` describes (the trainer
    ``ftc train`` builds, in a temporary directory) and predict the whole run. See the module
    docstring for what is measured and how it is predicted.

    ``price``: ``{"usd_per_hour": ..., "billing": ...}`` (see ``ftclient.cost.local_gpu_price``);
    default: from the spec (``local.gpu_price_per_hour`` or ``local.gpu``). ``progress(phase,
    done, total)`` is called as it goes. ``cache``: store the result under ``$FTC_HOME``.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise UsageError(f"calibration steps must be a whole number >= 1, not {steps!r}")
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise UsageError(f"warm-up steps must be a whole number >= 0, not {warmup_steps!r}")
    say: ProgressFn = progress or (lambda *a: None)
    t_all = clock()
    if price is None:
        from ftclient.cost import local_gpu_price

        price = local_gpu_price(spec=spec)
    key = cache_key(spec)
    examples = _count_lines(spec.data.train)
    eval_examples = _count_lines(spec.data.eval) if spec.data.eval else 0

    say("importing the training libraries", None, None)
    imports_measured = not all(m in sys.modules for m in ("torch", "transformers", "trl", "peft", "datasets"))
    t = clock()
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from .models import load_model_and_tokenizer, model_dir, quiet_offline_libraries, resolve_model
    from .train import _atomic_save, _quant_config, build_trainer, is_oom, make_plan, oom_error

    quiet_offline_libraries()
    imports_s = clock() - t

    plan = make_plan(spec, devices=devices)
    if getattr(plan, "num_processes", 1) > 1:
        raise ConfigError(f"calibration runs one training process; this run would use {plan.num_processes}",
                          hint="Calibrate with local.gpus: 1 (the prediction is then for one process).")
    cuda = plan.device == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    notes: list[str] = []
    source = resolve_model(plan.base_model)
    conversion_s = None
    if source.kind == "gguf" and tokenizer_folder(plan.base_model) is None:
        say("converting the model (once)", None, None)
        t = clock()
        model_dir(source)
        conversion_s = clock() - t
        notes.append(f"the one-time conversion of the GGUF model took {conversion_s:.1f} s "
                     "(later runs read the converted copy; not part of the prediction)")

    say("loading the model", None, None)
    t = clock()
    qc = _quant_config(plan) if plan.adapter == "qlora" else None
    model, tok = load_model_and_tokenizer(source, dtype=plan.model_dtype, device=plan.device, quantization_config=qc)
    sync()
    model_load_s = clock() - t

    cache_root = cache_dir()
    cache_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".run-", dir=cache_root))  # the same disk the real run writes to
    trainer = None
    try:
        say("building the trainer", None, None)
        fed: list[int] = []  # token positions of each training forward pass (padding included)
        timer = _timer_callback(clock, sync, say, fed)
        t = clock()
        trainer = build_trainer(spec, output_dir=work / "output", model=model, tokenizer=tok, callbacks=[timer],
                                plan=plan)
        build_s = clock() - t
        has_eval = trainer.eval_dataset is not None
        timer.has_eval = has_eval
        counts = _trainer_counts(trainer, plan, examples, eval_examples)
        args = trainer.args
        settings = Settings(method=plan.method, adapter=plan.adapter, base_model=plan.base_model, device=plan.device,
                            precision=plan.precision, model_dtype=plan.model_dtype,
                            batch_size=int(args.per_device_train_batch_size),
                            gradient_accumulation_steps=int(args.gradient_accumulation_steps),
                            epochs=plan.epochs, max_seq_len=plan.max_seq_len, packing=plan.packing,
                            gradient_checkpointing=plan.gradient_checkpointing, save_steps=plan.save_steps,
                            drop_last=bool(args.dataloader_drop_last), has_eval=has_eval,
                            lora_r=plan.lora_r if plan.adapter in ("lora", "qlora") else None)
        full_steps = count_optimizer_steps(counts.rows, settings.batch_size, settings.gradient_accumulation_steps,
                                           settings.epochs, drop_last=settings.drop_last)
        if full_steps == 0:
            raise ConfigError(f"no training step to run: {counts.rows} row(s) for batch size {settings.batch_size}",
                              hint="Give more examples, a smaller batch size or a larger max_seq_len.")
        k = min(steps, full_steps)
        # The short run: k steps, then the Trainer's own end-of-run evaluation and checkpoint save (one
        # each, timed); no saves or evaluations in between.
        args.max_steps = k
        args.save_steps = 10 ** 9
        if has_eval:
            args.eval_steps = 10 ** 9
        timer.total = k

        def count_fed(module: Any, args_: tuple, kwargs: dict) -> None:
            if module.training:
                ids = kwargs.get("input_ids") if kwargs else None
                if ids is None and args_:
                    ids = args_[0]
                if hasattr(ids, "numel"):
                    fed.append(int(ids.numel()))

        hook = trainer.model.register_forward_pre_hook(count_fed, with_kwargs=True)
        t_call = clock()
        try:
            trainer.train()
        except Exception as e:
            if is_oom(e):
                raise oom_error(plan) from e
            raise
        sync()
        t_ret = clock()
        hook.remove()

        say("saving the final model", None, None)
        t = clock()
        tok_out = trainer.processing_class

        def save_final(d: Path) -> None:
            trainer.model.save_pretrained(d)
            tok_out.save_pretrained(d)
            (d / "ftc_train.json").write_text(json.dumps({"calibration": True, "plan": plan.to_dict()}, default=str),
                                              encoding="utf-8")

        _atomic_save(work / "final", save_final)
        final_save_s = clock() - t
    finally:
        trainer = None
        model = None
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        shutil.rmtree(work, ignore_errors=True)

    ends = timer.ends[:k]
    begin = timer.begin if timer.begin is not None else t_call
    prev, step_s = begin, []
    for e in ends:
        step_s.append(e - prev)
        prev = e
    seen, prev_seen, step_x = timer.seen[:k], timer.seen0, []
    for x in seen:
        step_x.append(x - prev_seen)
        prev_seen = x
    marks = [0] + timer.fed_at[:k]
    step_pos = [sum(fed[a:b]) for a, b in zip(marks, marks[1:])]
    if not all(step_pos):  # the forward passes could not be counted: no positions model
        step_pos = []
    last = ends[-1] if ends else begin
    eval_s = (timer.evaluated - last) if timer.evaluated is not None else None
    save_from = timer.evaluated if timer.evaluated is not None else last
    save_s = (timer.saved - save_from) if timer.saved is not None else None
    finish_s = t_ret - (timer.saved if timer.saved is not None else save_from)
    m = Measurements(imports_s=imports_s, imports_measured=imports_measured, model_load_s=model_load_s,
                     trainer_build_s=build_s, trainer_start_s=begin - t_call, step_seconds=step_s, step_tokens=step_x,
                     warmup_steps=warmup_steps, checkpoint_save_s=save_s, eval_s=eval_s, final_save_s=final_save_s,
                     finish_s=max(finish_s, 0.0), conversion_s=conversion_s, step_positions=step_pos)
    if not imports_measured:
        notes.append("the training libraries were already imported in this process: their import time "
                     "(paid once by a training run) is not in the prediction")
    spread = _spread(m)
    if m.warmup_used < warmup_steps:
        notes.append(f"only {k} step(s) ran: {m.warmup_used} counted as warm-up")
    if plan.packing:
        notes.append("rows are packed: step and token counts are those of the packed rows")
    pred = predict(m, counts, settings)
    if spread is not None and spread > NOISY_SPREAD:
        fastest = _fastest(m)
        quiet = predict(fastest, counts, settings).total_s if fastest is not None else None
        notes.append(f"the steady steps' cost varied {spread:.1f}x from one step to another (per position fed; "
                     "about 1.15x on a quiet machine): something else was using this machine while it was measured"
                     + (f"; at the fastest measured rate the run would take {quiet:,.0f} s instead of "
                        f"{pred.total_s:,.0f} s" if quiet is not None else "")
                     + "; calibrate again when it is quiet, or with more --steps")
    cal = Calibration(key=key, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      model=plan.base_model, model_source=source.describe(), data=str(spec.data.train),
                      device=plan.device, device_name=_device_name(plan.device), precision=plan.precision,
                      settings=settings, counts=counts, measured=m, prediction=pred, calibration_steps=k,
                      calibration_wall_s=clock() - t_all, price=price, cost=_cost(pred.total_s, price),
                      notes=notes + list(plan.notes))
    if cache:
        save_calibration(cal)
    return cal


def _spread(m: Measurements) -> Optional[float]:
    """max / min of the steady steps' seconds per position fed (per step without positions)."""
    w = m.warmup_used
    t = m.step_seconds[w:]
    if len(t) < 3:
        return None
    x = m.step_positions[w:] if len(m.step_positions) == len(m.step_seconds) else [1] * len(t)
    per = [a / b for a, b in zip(t, x) if b > 0 and a > 0]
    return max(per) / min(per) if len(per) >= 3 else None


def _fastest(m: Measurements) -> Optional[Measurements]:
    """The measurements with every steady step at the fastest steady rate (per position fed)."""
    from dataclasses import replace

    w = m.warmup_used
    if len(m.step_positions) != len(m.step_seconds) or len(m.step_seconds) - w < 1:
        return None
    rate = min(t / x for t, x in zip(m.step_seconds[w:], m.step_positions[w:]) if x > 0)
    secs = m.step_seconds[:w] + [rate * x for x in m.step_positions[w:]]
    return replace(m, step_seconds=secs)


def _count_lines(path: "str | os.PathLike | None") -> int:
    return 0 if path is None else count_records(path)
