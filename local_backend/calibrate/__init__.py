"""Estimates of a local training run that hold: a few real steps here, then the whole run predicted.

    cal = calibrate(spec, steps=8)     # the real trainer (train.build_trainer), a few optimizer steps
    cal.prediction.total_s             # the full run's wall time, in parts that add up
    cal.cost                           # hours x $/h, when a price is known
    load_cached(spec)                  # the last calibration of this model, data and settings here

The parts: :mod:`.spec` (the job spec of a run to estimate), :mod:`.counts` (steps, rows and
tokens as the Trainer counts them; offline token counts without torch), :mod:`.prediction`
(the whole run from the measured steps, re-predicted for other epochs or checkpoint
intervals), :mod:`.cache` (calibrations kept under ``$FTC_HOME/calibrations``) and
:mod:`.run` (the short training run that measures).

Importing this package imports neither torch nor transformers: only :func:`calibrate` does.
"""

from __future__ import annotations

from .cache import CACHE_DIR, cache_dir, cache_key, load_cached, machine_fingerprint, save_calibration
from .counts import (
    DataCounts,
    checkpoint_saves,
    count_lines,
    count_optimizer_steps,
    evaluations,
    expected_positions,
    micro_batches_per_epoch,
    offline_counter,
    offline_counts,
    steps_per_epoch,
    tokenizer_folder,
)
from .prediction import (
    NOISY_SPREAD,
    SCHEMA,
    Calibration,
    Measurements,
    Prediction,
    Settings,
    at_fastest_rate,
    predict,
    run_cost,
    steady_spread,
)
from .run import DEFAULT_STEPS, WARMUP_STEPS, ProgressFn, calibrate
from .spec import DEFAULT_BATCH_SIZE, local_model_name, spec_for

__all__ = [
    "CACHE_DIR",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_STEPS",
    "NOISY_SPREAD",
    "SCHEMA",
    "WARMUP_STEPS",
    "Calibration",
    "DataCounts",
    "Measurements",
    "Prediction",
    "ProgressFn",
    "Settings",
    "at_fastest_rate",
    "cache_dir",
    "cache_key",
    "calibrate",
    "checkpoint_saves",
    "count_lines",
    "count_optimizer_steps",
    "evaluations",
    "expected_positions",
    "load_cached",
    "local_model_name",
    "machine_fingerprint",
    "micro_batches_per_epoch",
    "offline_counter",
    "offline_counts",
    "predict",
    "run_cost",
    "save_calibration",
    "spec_for",
    "steady_spread",
    "steps_per_epoch",
    "tokenizer_folder",
]
