"""The calibration run: a few real training steps here, measured, then the whole run predicted.

**Measured**, each on its own: importing the training libraries; loading the model; building
the trainer (reading and tokenizing the data, wrapping the model with the adapter); the
trainer's start until its first step; the first optimizer step(s) (warm-up); every later
step (seconds; non-padding tokens from the trainer's own ``num_input_tokens_seen``; token
positions fed, padding included, from a forward pre-hook on the model);
one checkpoint save and, with eval data, one evaluation (both done by the Trainer itself,
at the end of the short run); the final save as :func:`train.train` writes it.

This module imports torch/transformers only inside the functions that run the trainer.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ftclient.errors import ConfigError, UsageError

from .cache import cache_dir, cache_key, save_calibration
from .counts import DataCounts, count_lines, count_optimizer_steps, expected_positions, tokenizer_folder
from .prediction import (
    NOISY_SPREAD,
    Calibration,
    Measurements,
    Settings,
    at_fastest_rate,
    predict,
    run_cost,
    steady_spread,
)

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.spec import JobSpec

DEFAULT_STEPS = 8
WARMUP_STEPS = 1

ProgressFn = Callable[[str, Optional[int], Optional[int]], None]


def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"{os.cpu_count()}-core CPU ({torch.get_num_threads()} torch threads)"


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
    ``ftc train`` builds, in a temporary directory) and predict the whole run. See the docstrings
    of this module for what is measured and of :mod:`.prediction` for how it is predicted.

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

        price = local_gpu_price(spec=spec, backend="local")
    key = cache_key(spec)
    examples = count_lines(spec.data.train)
    eval_examples = count_lines(spec.data.eval) if spec.data.eval else 0

    say("importing the training libraries", None, None)
    imports_measured = not all(m in sys.modules for m in ("torch", "transformers", "trl", "peft", "datasets"))
    t = clock()
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from ..models import load_model_and_tokenizer, model_dir, quiet_offline_libraries, resolve_model
    from ..train import _atomic_save, _quant_config, build_trainer, is_oom, make_plan, oom_error

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
    spread = steady_spread(m)
    if m.warmup_used < warmup_steps:
        notes.append(f"only {k} step(s) ran: {m.warmup_used} counted as warm-up")
    if plan.packing:
        notes.append("rows are packed: step and token counts are those of the packed rows")
    pred = predict(m, counts, settings)
    if spread is not None and spread > NOISY_SPREAD:
        fastest = at_fastest_rate(m)
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
                      calibration_wall_s=clock() - t_all, price=price, cost=run_cost(pred.total_s, price),
                      notes=notes + list(plan.notes))
    if cache:
        save_calibration(cal)
    return cal
