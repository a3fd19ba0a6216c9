"""The local backend's estimates, offline and without torch, each a
:class:`~ftclient.cost.LocalCostEstimate`: of a job spec (:func:`estimate_spec`, what
``LocalBackend.estimate`` returns for ``ftc train``'s plan) and of a training run on a data
file (:func:`estimate_file`: ``ftc cost estimate --model local:MODEL``, the ``local:`` rows of
``ftc cost compare``)."""

from __future__ import annotations

import os
from typing import Any

from ftclient.cost import LocalCostEstimate, check_args, epochs_for, local_gpu_price, local_training_cost
from ftclient.data.parquet import is_parquet_path, not_jsonl_error
from ftclient.errors import ConfigError
from ftclient.prices import Catalogue
from ftclient.tokens import as_records

from . import calibrate as cal

__all__ = ["estimate_file", "estimate_spec"]


def estimate_file(
    path: str | os.PathLike,
    model_ref: str,
    *,
    epochs: int | None = None,
    method: str | None = None,
    adapter: str | None = None,
    batch_size: int | None = None,
    max_seq_len: int | None = None,
    spec: Any = None,
    usd_per_hour: float | None = None,
    prices: Catalogue | str | os.PathLike | None = None,
    today=None,
) -> LocalCostEstimate:
    """Training estimate of a local run (``local:default``, ``local:PATH``) on a data file,
    offline and without torch.

    Tokens: the model's own tokenizer and chat template when it is on disk, else the labelled
    approximation. Time: from a calibration of the same model, data and settings on this
    machine (cached by ``--calibrate``), else unknown -- never a made-up speed. Cost: time x
    the price (:func:`local_gpu_price`), $0 on your own machine without one, unknown when
    there is a price but no time.
    """
    check_args(epochs, method or "sft", adapter or "lora")
    if is_parquet_path(path):
        raise not_jsonl_error(path, f"local training ({model_ref})")
    records = as_records(path)
    n = len(records)
    ep, ep_basis = epochs_for(epochs, n)
    job = cal.spec_for(path, cal.local_model_name(model_ref), spec=spec, epochs=ep, method=method, adapter=adapter,
                       batch_size=batch_size, max_seq_len=max_seq_len)
    counts = cal.offline_counts(job, records)
    price = local_gpu_price(usd_per_hour=usd_per_hour, spec=job, prices=prices, today=today, backend="local")
    bs = job.hyperparameters.batch_size or cal.DEFAULT_BATCH_SIZE
    accum = job.local.gradient_accumulation_steps
    steps = cal.count_optimizer_steps(counts.rows, bs, accum, ep)
    steps_basis = (f"{counts.rows:,} rows / batch {bs} x {accum} accumulation, {ep} epoch(s), as the Trainer counts; "
                   "unpacked rows (on a CUDA GPU with packing on, rows are packed: fewer steps)")
    found = cal.load_cached(job, price=price)
    caveats: list[str] = []
    duration = calib = device = None
    if found is not None:
        duration, steps, steps_basis, device, time_basis, calib = _calibrated(found)
    else:
        time_basis = ("unknown: no calibration of this model, data and settings on this machine; "
                      "add --calibrate to run a few real steps and predict the run")
    if price is None:
        cost: float | None = 0.0
        cost_basis = ("your own machine: $0; give --gpu-price-per-hour (or local.gpu_price_per_hour / local.gpu in "
                      "the spec) for a figure")
    elif duration is None:
        cost = None
        cost_basis = (f"unknown: ${price['usd_per_hour']:g}/h ({price.get('source', 'given')}) x an unknown time; "
                      "add --calibrate")
        caveats.append("no cost without a measured speed: run with --calibrate")
    else:
        c = local_training_cost(duration, price)
        cost, cost_basis = c["cost_usd"], "estimated: " + c["basis"]
    if not counts.exact:
        caveats.append("token count approximated (the model's tokenizer is not readable offline yet)")
    return _record(job, f"local:{job.model_for('local')}", counts, ep, ep_basis, cost, cost_basis, price, caveats,
                   duration, time_basis, steps, steps_basis, bs, device, calib)


def estimate_spec(spec: Any, *, backend: str = "local") -> LocalCostEstimate:
    """The estimate of a local job spec (``LocalBackend.estimate``, the plan of ``ftc train
    --backend local``), offline and without torch.

    Tokens with the model's own tokenizer and chat template (a labelled approximation when it
    is not on disk yet), optimizer steps as the Trainer counts them; the time from a
    calibration of the same model, data and settings on this machine (``ftc cost estimate
    --calibrate``), else unknown; the cost = hours x ``local.gpu_price_per_hour`` (or
    ``local.gpu``'s catalogue price): $0 without a price (your own machine), unknown (None)
    with a price but no measured time.
    """
    from ftclient.tokens import ApproxCounter, read_records

    model = spec.model_for(backend)
    records = read_records(spec.data.train)
    try:
        counts = cal.offline_counts(spec, records)
    except ConfigError as e:  # the model cannot be found here: training will say so; count approximately
        counts = cal.offline_counts(spec, records, counter=ApproxCounter(f"local:{model}", reason=e.message))
    ep, ep_basis = epochs_for(spec.hyperparameters.epochs, counts.examples)
    bs = spec.hyperparameters.batch_size or cal.DEFAULT_BATCH_SIZE
    accum = spec.local.gradient_accumulation_steps
    steps = cal.count_optimizer_steps(counts.rows, bs, accum, ep)
    steps_basis = (f"{counts.rows:,} rows / batch {bs} x {accum} accumulation, {ep} epoch(s), as the Trainer counts; "
                   "unpacked rows (on a CUDA GPU with packing on, rows are packed: fewer steps)")
    price = local_gpu_price(spec=spec, backend=backend)
    found = cal.load_cached(spec, price=price)
    caveats = [] if counts.exact else [f"approximate token count: {counts.basis}"]
    duration = calib = device = None
    if found is not None:
        duration, steps, steps_basis, device, time_basis, calib = _calibrated(found)
    else:
        time_basis = "unknown: not calibrated on this machine for this model, data and settings"
        caveats.append("time unknown: `ftc cost estimate --spec JOB.yaml --calibrate` runs a few real steps "
                       "and predicts it (then this estimate uses it)")
    if price is None:
        cost: float | None = 0.0
        cost_basis = "your own machine: set local.gpu_price_per_hour (or local.gpu) for a cost figure"
    elif duration is None:
        cost = None
        cost_basis = f"unknown: ${price['usd_per_hour']:g}/h x an unknown time"
    else:
        c = local_training_cost(duration, price)
        cost, cost_basis = round(c["cost_usd"], 4), "estimated: " + c["basis"]
    return _record(spec, f"local:{model}", counts, ep, ep_basis, cost, cost_basis, price, caveats,
                   duration, time_basis, steps, steps_basis, bs, device, calib)


def _record(job: Any, model_ref: str, counts: Any, ep: int, ep_basis: str, cost: float | None, cost_basis: str,
            price: dict | None, caveats: list[str], duration: float | None, time_basis: str, steps: int | None,
            steps_basis: str, bs: int, device: str | None, calib: dict | None) -> LocalCostEstimate:
    """The estimate record of a run on this machine: no minimum charge, a cost that is never
    exact (a time x a price)."""
    return LocalCostEstimate(
        model=model_ref,
        provider="local",
        kind="self-hosted",
        method=job.method,
        adapter=job.adapter,
        examples=counts.examples,
        tokens_per_epoch=counts.tokens_per_epoch,
        epochs=ep,
        epochs_basis=ep_basis,
        billed_tokens=counts.tokens_per_epoch * ep,
        cost_usd=cost,
        cost_before_minimum_usd=cost,
        min_charge_usd=0.0,
        min_charge_applied=False,
        token_count_basis=counts.basis,
        token_count_exact=counts.exact,
        cost_exact=False,
        cost_basis=cost_basis,
        price=price or {},
        caveats=caveats,
        duration_s=duration,
        time_basis=time_basis,
        optimizer_steps=steps,
        steps_basis=steps_basis,
        rows=counts.rows,
        batch_size=bs,
        device=device,
        calibration=calib,
    )


def _calibrated(found: Any) -> tuple[float, int, str, str, str, dict[str, Any]]:
    """(duration_s, optimizer steps, their basis, device, time basis, calibration record) of a
    cached calibration predicted for the run."""
    p, m = found.prediction, found.measured
    time_basis = (f"calibrated on this machine {found.created_at} ({found.calibration_steps} real steps): "
                  f"setup {p.setup_s:.1f} s + warm-up {p.warmup_s:.1f} s + steps {p.steps_s:.1f} s "
                  f"({m.seconds_per_step:.3g} s/step) + {p.checkpoint_saves} checkpoint save(s) "
                  f"{p.checkpoints_s:.1f} s"
                  + (f" + {p.evaluations} evaluation(s) {p.evaluations_s:.1f} s" if p.evaluations else "")
                  + f" + final save {p.final_save_s + p.finish_s:.1f} s = {p.total_s:,.1f} s")
    calib = {"key": found.key, "created_at": found.created_at, "calibration_steps": found.calibration_steps,
             "prediction": p.to_dict(), "seconds_per_step": m.seconds_per_step, "tokens_per_step": m.tokens_per_step}
    device = f"{found.device} ({found.device_name}), {found.precision}"
    return (p.total_s, p.optimizer_steps, "as the Trainer counts, from the calibration", device, time_basis, calib)
