"""Training throughput of ftc's local trainer vs plain TRL ``SFTTrainer`` defaults, in one run.

    .venv/bin/python benchmarks/train_throughput.py [--model default|PATH] [--steps 8]
        [--batch-size 8] [--max-seq-len 512] [--device auto|cpu|cuda] [--rounds 1]
        [--source ../shared/datasets/banking77/train.csv] [--peak-tflops T]
        [--baseline-checkpointing default|on|off]

Data: banking77 support tickets as SFT chat records (system prompt, user ticket,
assistant intent), as ``ftc data prepare`` writes them; the same records feed both
trainers. Model: the same base (``load_model_and_tokenizer``, in the dtype ftc's plan
picks), a fresh copy per trainer; the same LoRA config (``_peft_config(plan)``), batch
size, max length, seed and number of optimizer steps.

* ftc: ``build_trainer(spec)`` exactly as ``ftc train`` builds it (on CUDA: best-fit
  packing, padding-free; on CPU/MPS packing is off by design; assistant-only loss).
* TRL: ``SFTConfig`` defaults -- padded batches (pad to the longest in the batch), no
  packing, loss on all tokens, TRL's default gradient checkpointing (on; see
  ``--baseline-checkpointing``) -- with only what is needed to run the same job here set:
  batch size, max length, steps, seed, the plan's precision (bf16/fp16/fp32: TRL's own
  default bf16=True cannot run on a CPU), no reports, no checkpoints, no progress bar.

Tokens are the non-padding tokens fed to the model (``attention_mask`` summed over the
batches actually fed; a padding-free packed batch has no padding, so all its tokens);
time is wall time from the end of the first (warm-up) optimizer step to the end of the
last one (so it includes collation, logging, the optimizer), synchronised on CUDA.
With ``--rounds R`` both trainers run R times in alternating order (the machine may be
shared and noisy); best and median are printed. On CUDA, MFU is also printed:
tokens x (4 N + 2 N_trainable) FLOPs (forward 2N, input gradients 2N, weight gradients
only for trainable weights; = 6N for a full fine-tune; attention score FLOPs not
counted) / (peak dense bf16/fp16 FLOP/s x time), peak from a small table or
``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# banking77's full train.csv in ../shared/datasets/ when present, else the 964-row subset in tests/data/.
_FULL = ROOT.parent / "shared" / "datasets" / "banking77" / "train.csv"
BANKING = _FULL if _FULL.is_file() else ROOT / "tests" / "data" / "banking77" / "train_subset.csv"
SYSTEM_PROMPT = "Route the customer's message to one intent. Answer with the intent name only."  # = ftclient.demo

# Dense (no sparsity) bf16/fp16 tensor-core peak, TFLOP/s; first substring match of the CUDA device name wins.
PEAK_TFLOPS = [
    ("H200", 989.0), ("GH200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),
    ("H800", 989.0), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0),
    ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0),
    ("V100", 125.0), ("T4", 65.0),
]


class BenchError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


# ----------------------------------------------------------------------------- options and data

def positive(name: str, lo: int = 1, hi: int | None = None):
    def conv(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {s!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{name} must be between {lo} and {hi}, got {v}" if hi
                                             else f"{name} must be >= {lo}, got {v}")
        return v
    return conv


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Training tokens/s: ftc's local trainer vs plain TRL SFTTrainer defaults.")
    ap.add_argument("--model", default="default", help="'default' (SmolLM2-135M-Instruct), a model directory, "
                    "a .gguf file or a cached HF id")
    ap.add_argument("--steps", type=positive("--steps"), default=8, help="timed optimizer steps (+1 warm-up); default 8")
    ap.add_argument("--batch-size", type=positive("--batch-size", 1, 4096), default=8, help="per device; default 8")
    ap.add_argument("--max-seq-len", type=positive("--max-seq-len", 32, 262144), default=512,
                    help="max length (truncation; the packed row length when ftc packs); default 512")
    ap.add_argument("--source", type=Path, default=BANKING, help="banking77 train.csv (columns text, category)")
    ap.add_argument("--records", type=positive("--records"), default=None,
                    help="records to build (default: enough for the steps)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--rounds", type=positive("--rounds", 1, 20), default=1,
                    help="run both trainers R times, alternating order; default 1")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's peak dense bf16/fp16 TFLOP/s, for MFU")
    ap.add_argument("--baseline-checkpointing", choices=("default", "on", "off"), default="default",
                    help="gradient checkpointing of the TRL baseline; default: TRL's default (on)")
    args = ap.parse_args(argv)
    if args.peak_tflops is not None and not (args.peak_tflops > 0 and math.isfinite(args.peak_tflops)):
        ap.error(f"--peak-tflops must be a positive number, got {args.peak_tflops}")
    return args


def load_records(path: Path, n: int | None, needed: int) -> tuple[list[dict], int]:
    if not path.is_file():
        raise BenchError(f"{path}: no such file", hint="Point --source at banking77's train.csv "
                         "(text,category columns).")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BenchError(f"{path}: cannot read it as CSV ({e})") from None
    if not rows or not {"text", "category"} <= set(rows[0]):
        raise BenchError(f"{path}: expected a CSV with 'text' and 'category' columns")
    rows = [r for r in rows if (r.get("text") or "").strip() and (r.get("category") or "").strip()]
    if not rows:
        raise BenchError(f"{path}: no rows with both text and category")
    n = min(n or needed, len(rows))
    recs = [{"messages": [{"role": "system", "content": SYSTEM_PROMPT},
                          {"role": "user", "content": r["text"].strip()},
                          {"role": "assistant", "content": r["category"].strip()}]} for r in rows[:n]]
    return recs, len(rows)


# ----------------------------------------------------------------------------- measuring

def make_meter(device: str):
    import torch
    from transformers import TrainerCallback

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    class Meter(TrainerCallback):
        """Per micro-batch: non-padding and fed tokens (device tensors, read at the end); per step: end time."""

        def __init__(self):
            self.tokens: list = []
            self.fed: list[int] = []
            self.step_ends: list[float] = []
            self.marks: list[int] = []

        def count(self, inputs) -> None:
            ids = inputs.get("input_ids")
            mask = inputs.get("attention_mask")
            if mask is not None:
                self.tokens.append(mask.detach().sum())
            elif ids is not None:  # padding-free packed batch: no padding at all
                self.tokens.append(ids.numel())
            else:
                raise BenchError("a training batch has neither attention_mask nor input_ids")
            self.fed.append(ids.numel() if ids is not None else 0)

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            self.step_ends.append(time.perf_counter())
            self.marks.append(len(self.tokens))
            return control

        def result(self) -> dict:
            if len(self.step_ends) < 2:
                raise BenchError("fewer than 2 optimizer steps ran; nothing to time")
            lo, hi = self.marks[0], self.marks[-1]
            toks = [int(t) for t in self.tokens]
            tokens = sum(toks[lo:hi])
            fed = sum(self.fed[lo:hi])
            secs = self.step_ends[-1] - self.step_ends[0]
            return {"steps": len(self.step_ends) - 1, "tokens": tokens, "fed": fed, "seconds": secs,
                    "tokens_per_s": tokens / secs if secs > 0 else 0.0, "all_tokens": sum(toks)}

    return Meter()


def hook_training_step(trainer, meter) -> None:
    orig = trainer.training_step

    def training_step(model, inputs, *a, **kw):
        meter.count(inputs)
        return orig(model, inputs, *a, **kw)

    trainer.training_step = training_step


def param_counts(model) -> tuple[int, int]:
    """(compute-relevant parameters, trainable parameters); an untied input embedding is a lookup, not a matmul."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    try:
        emb_in = model.get_input_embeddings().weight
        emb_out = model.get_output_embeddings()
        if emb_out is None or emb_out.weight is not emb_in:
            total -= emb_in.numel()
    except (AttributeError, NotImplementedError):
        pass
    return total, trainable


def release(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def run_ftc(spec, plan, out: Path, steps: int) -> dict:
    from ftclient.local_backend.models import load_model_and_tokenizer, resolve_model
    from ftclient.local_backend.train import build_trainer

    plan = copy.deepcopy(plan)  # build_trainer records template decisions in the plan
    model, tok = load_model_and_tokenizer(resolve_model(plan.base_model), dtype=plan.model_dtype, device=plan.device)
    meter = make_meter(plan.device)
    trainer = build_trainer(spec, output_dir=out, model=model, tokenizer=tok, callbacks=[meter], plan=plan)
    trainer.args.max_steps = steps + 1
    hook_training_step(trainer, meter)
    trainer.train()
    r = meter.result()
    r["params"] = param_counts(trainer.model)
    r["assistant_only_loss"] = plan.assistant_only_loss
    seen = int(trainer.state.num_input_tokens_seen or 0)
    r["trainer_tokens_seen"] = seen
    del trainer, model
    release(plan.device)
    return r


def baseline_config(plan, out: Path, steps: int, checkpointing: str):
    from trl import SFTConfig

    kw = dict(output_dir=str(out), per_device_train_batch_size=plan.batch_size, max_length=plan.max_seq_len,
              max_steps=steps + 1, seed=plan.seed, report_to="none", save_strategy="no", disable_tqdm=True,
              use_cpu=plan.device == "cpu", bf16=plan.precision == "bf16", fp16=plan.precision == "fp16")
    if checkpointing != "default":
        from transformers import TrainingArguments

        on = checkpointing == "on"
        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__:
            kw.update(activation_checkpointing=on)
        else:
            kw.update(gradient_checkpointing=on)
    return SFTConfig(**kw)


def run_trl(plan, train_file: Path, out: Path, steps: int, checkpointing: str) -> dict:
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    from ftclient.local_backend.models import load_model_and_tokenizer, resolve_model
    from ftclient.local_backend.train import _peft_config, sft_rows

    model, tok = load_model_and_tokenizer(resolve_model(plan.base_model), dtype=plan.model_dtype, device=plan.device)
    meter = make_meter(plan.device)
    config = baseline_config(plan, out, steps, checkpointing)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(sft_rows(train_file)),
                         processing_class=tok, peft_config=_peft_config(plan), callbacks=[meter])
    trainer.remove_callback(PrinterCallback)
    hook_training_step(trainer, meter)
    trainer.train()
    r = meter.result()
    r["params"] = param_counts(trainer.model)
    r["checkpointing"] = bool(getattr(trainer.args, "activation_checkpointing",
                                      getattr(trainer.args, "gradient_checkpointing", False)))
    r["logging_steps"] = trainer.args.logging_steps
    r["precision"] = "bf16" if trainer.args.bf16 else ("fp16" if trainer.args.fp16 else "fp32")
    del trainer, model
    release(plan.device)
    return r


# ----------------------------------------------------------------------------- report

def machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{os.cpu_count()} cores ({cpu})", f"torch threads {torch.get_num_threads()}"
             + (f" (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})" if "OMP_NUM_THREADS" in os.environ else "")]
    if device == "cuda":
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    else:
        parts.append("no GPU used")
    try:
        parts.append("load average %.2f %.2f %.2f" % os.getloadavg())
    except OSError:
        pass
    return ", ".join(parts)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"Python {platform.python_version()}"]
    for d in ("torch", "transformers", "trl", "peft"):
        try:
            out.append(f"{d} {version(d)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def peak_tflops(override: float | None) -> tuple[float | None, str]:
    if override:
        return override, f"{override:g} TFLOP/s (--peak-tflops)"
    import torch

    name = torch.cuda.get_device_name(0)
    for key, tf in PEAK_TFLOPS:
        if key.lower() in name.lower():
            return tf, f"{tf:g} TFLOP/s dense bf16/fp16 ({key}, from the table)"
    return None, f"unknown for {name!r}; give --peak-tflops"


def fmt(r: dict) -> str:
    pad = 1 - r["tokens"] / r["fed"] if r["fed"] else 0.0
    return (f"{r['tokens']:,} tokens in {r['seconds']:.2f} s over {r['steps']} steps = "
            f"{r['tokens_per_s']:,.1f} tokens/s ({r['seconds'] / r['steps']:.2f} s/step, "
            f"{r['tokens'] / r['steps']:,.0f} tokens/step, padding {pad:.0%} of fed positions)")


def mfu(r: dict, peak: float | None) -> str:
    if not peak:
        return "n/a"
    n, nt = r["params"]
    flops = r["tokens"] * (4 * n + 2 * nt)
    return f"{flops / (peak * 1e12 * r['seconds']):.2%}"


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch  # noqa: F401
        import trl  # noqa: F401
        from transformers.utils import logging as hf_logging

        from ftclient.errors import FtcError
        from ftclient.local_backend.models import quiet_offline_libraries
        from ftclient.local_backend.train import is_oom, make_plan
        from ftclient.spec import parse_spec
    except ImportError as e:
        print(f"error: the local training libraries are not installed ({e.name or e})", file=sys.stderr)
        print('hint: pip install "ftclient[local]"', file=sys.stderr)
        return 1
    quiet_offline_libraries()
    hf_logging.set_verbosity_error()
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    warnings.filterwarnings("ignore")

    try:
        with tempfile.TemporaryDirectory(prefix="ftc-train-bench-") as tmp:
            tmp = Path(tmp)
            train_file = tmp / "train.jsonl"
            train_file.write_text("{}\n")  # placeholder so the spec validates; rewritten below
            spec = parse_spec({
                "name": "train-throughput", "base_model": args.model, "method": "sft", "adapter": "lora",
                "data": {"train": str(train_file)},
                "hyperparameters": {"epochs": 1, "batch_size": args.batch_size, "max_seq_len": args.max_seq_len},
                "local": {"device": args.device, "checkpoint_every": 10**9},
            }, source="benchmark spec")
            plan = make_plan(spec)
            from ftclient.local_backend.models import resolve_model

            resolve_model(plan.base_model)  # fail early on a bad --model
            per_step = args.batch_size * (max(1, args.max_seq_len // 24) if plan.packing else 1)
            records, available = load_records(args.source, args.records, (args.steps + 1) * per_step)
            with open(train_file, "w", encoding="utf-8") as f:
                for rec in records:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")

            print("Training throughput: ftc local trainer vs plain TRL SFTTrainer defaults (one run)")
            print(f"machine: {machine(plan.device)}")
            print(f"software: {versions()}")
            lora_tm = plan.target_modules if isinstance(plan.target_modules, str) else ",".join(plan.target_modules)
            print(f"settings: model {plan.base_model}, device {plan.device} {plan.precision} (weights {plan.model_dtype}), "
                  f"LoRA r={plan.lora_r} alpha={plan.lora_alpha} dropout={plan.lora_dropout} {lora_tm}, "
                  f"batch {plan.batch_size}, max_seq_len {plan.max_seq_len}, {args.steps} timed steps + 1 warm-up, "
                  f"{len(records):,} of {available:,} banking77 records ({args.source.name}, system prompt), "
                  f"seed {plan.seed}, rounds {args.rounds}")

            results: list[tuple[dict, dict]] = []
            for rnd in range(args.rounds):
                order = ("trl", "ftc") if rnd % 2 == 0 else ("ftc", "trl")
                got = {}
                for who in order:
                    out = tmp / f"{who}-{rnd}"
                    got[who] = (run_ftc(spec, plan, out, args.steps) if who == "ftc"
                                else run_trl(plan, train_file, out, args.steps, args.baseline_checkpointing))
                b, f_ = got["trl"], got["ftc"]
                if rnd == 0:
                    ftc_ck = "on" if plan.gradient_checkpointing else "off"
                    print(f"ftc: build_trainer as `ftc train` runs it: packing "
                          f"{'on (best-fit, padding-free)' if plan.packing else 'off'}, "
                          f"loss on {'assistant tokens only' if f_['assistant_only_loss'] else 'all tokens'}, "
                          f"gradient checkpointing {ftc_ck}, logging every step"
                          + "".join(f"; note: {n}" for n in plan.notes))
                    print(f"TRL: SFTConfig defaults: padded to the longest in each batch, no packing, loss on all "
                          f"tokens, gradient checkpointing {'on' if b['checkpointing'] else 'off'}"
                          f"{' (TRL default)' if args.baseline_checkpointing == 'default' else ' (--baseline-checkpointing)'}, "
                          f"logging every {b['logging_steps']} steps, {b['precision']} (as ftc's plan)")
                print(f"round {rnd + 1} ({' then '.join(order)}):")
                print(f"  TRL defaults: {fmt(b)}")
                print(f"  ftc:          {fmt(f_)}")
                if f_["trainer_tokens_seen"] and f_["trainer_tokens_seen"] != f_["all_tokens"]:
                    print(f"  note: the trainer's own count of tokens seen is {f_['trainer_tokens_seen']:,}, "
                          f"this script's {f_['all_tokens']:,} (all steps)")
                print(f"  ratio ftc/TRL: {f_['tokens_per_s'] / b['tokens_per_s']:.2f}x")
                results.append((b, f_))

            bt = [b["tokens_per_s"] for b, _ in results]
            ft = [f["tokens_per_s"] for _, f in results]
            ratios = [f / b for b, f in zip(bt, ft)]
            if args.rounds > 1:
                print(f"best of {args.rounds}: TRL {max(bt):,.1f} tokens/s, ftc {max(ft):,.1f} tokens/s, "
                      f"ratio {max(ft) / max(bt):.2f}x; median of per-round ratios {statistics.median(ratios):.2f}x "
                      f"(range {min(ratios):.2f}x to {max(ratios):.2f}x)")
            ratio = max(ft) / max(bt)
            if plan.device == "cuda":
                peak, how = peak_tflops(args.peak_tflops)
                bb = max((b for b, _ in results), key=lambda r: r["tokens_per_s"])
                fb = max((f for _, f in results), key=lambda r: r["tokens_per_s"])
                n, nt = fb["params"]
                print(f"MFU (tokens x (4N + 2N_trainable), N={n / 1e6:.1f}M, trainable {nt / 1e6:.2f}M; "
                      f"peak {how}): TRL {mfu(bb, peak)}, ftc {mfu(fb, peak)}")
            goal = ("goal >= 2x: met" if ratio >= 2 else "goal >= 2x: not met") if plan.device == "cuda" else \
                "on CPU ftc turns packing off by design, so about 1x is expected; the >= 2x goal is for a GPU"
            print(f"RESULT: ftc / TRL defaults = {ratio:.2f}x training tokens/s ({goal})")
            return 0
    except FtcError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return getattr(e, "exit_code", 1) or 1
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001
        if is_oom(e):
            print(f"error: out of {plan.device} memory ({type(e).__name__}); try a smaller --batch-size "
                  "or --max-seq-len", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
