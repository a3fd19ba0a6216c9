"""Accuracy of ``ftc cost estimate --calibrate``: the predicted wall time of a local run vs the real run.

    .venv/bin/python benchmarks/calibrate_accuracy.py [--model default|PATH] [--examples 224]
        [--eval-examples 24] [--epochs 2] [--batch-size 8] [--steps 8] [--checkpoint-every N]
        [--max-seq-len L] [--device auto|cpu|cuda] [--source ../shared/datasets/banking77/train.csv]
        [--tolerance 0.25]

1. Data: banking77 support tickets (a random sample of ``--source``, or the sample bundled with
   ftc when that file is missing) through ``ftclient.data.prepare`` (system prompt, ticket ->
   intent), then ``--examples`` training and ``--eval-examples`` eval records.
2. Calibration: :func:`ftclient.local_backend.calibrate.calibrate` in this process, which has not
   imported torch/transformers yet, so their import time is measured as a training process pays it.
3. The real run: a fresh Python process runs ``train(spec, output_dir)`` -- what the tracked job's
   worker runs -- over the whole data with checkpoints every ``local.checkpoint_every`` steps
   (the job default unless ``--checkpoint-every``) and the eval data evaluated at each checkpoint.
   Measured: the process's wall time from start to exit, and ``train()``'s own.
4. Predicted vs measured, both ways (the whole process incl. imports; ``train()`` alone vs the
   prediction without imports), the ratio predicted / measured, and PASS when both ratios are
   within 1 +- tolerance.

The machine may be shared and noisy; the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# banking77's full train.csv in ../shared/datasets/ when present, else the 964-row subset in tests/data/.
_FULL = ROOT.parent / "shared" / "datasets" / "banking77" / "train.csv"
BANKING = _FULL if _FULL.is_file() else ROOT / "tests" / "data" / "banking77" / "train_subset.csv"
SYSTEM_PROMPT = "Route the customer's message to one intent. Answer with the intent name only."  # = ftclient.demo

CHILD = r'''
import json, sys, time
from pathlib import Path
t0 = time.monotonic()
import datasets, peft, torch, transformers, trl  # what train() imports (timed apart)
from transformers import TrainerCallback
from ftclient.local_backend.train import train
from ftclient.spec import parse_spec
t_imports = time.monotonic() - t0
spec = parse_spec(json.loads(Path(sys.argv[1]).read_text()), source=sys.argv[1])
marks = {"ends": [], "seen": [], "evals": [], "saves": []}

class Clock(TrainerCallback):
    def on_train_begin(self, args, state, control, **kw):
        marks["begin"] = time.monotonic()
    def on_step_end(self, args, state, control, **kw):
        marks["ends"].append(time.monotonic())
        marks["seen"].append(state.num_input_tokens_seen)
    def on_evaluate(self, args, state, control, **kw):
        marks["evals"].append(time.monotonic())
    def on_save(self, args, state, control, **kw):
        marks["saves"].append(time.monotonic())

t1 = time.monotonic()
r = train(spec, output_dir=sys.argv[2], callbacks=[Clock()])
t2 = time.monotonic()
print("RESULT " + json.dumps({"imports_s": t_imports, "train_s": t2 - t1, "t1": t1, "t2": t2, "steps": r.steps,
                              "max_steps": r.max_steps, "tokens_seen": r.tokens_seen, "completed": r.completed,
                              "marks": marks}))
'''


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Predicted (ftc cost estimate --calibrate) vs measured local training time.")
    ap.add_argument("--model", default="default", help="'default' (SmolLM2-135M-Instruct), a model directory or .gguf")
    ap.add_argument("--examples", type=int, default=224, help="training examples (default 224: 28 steps an epoch at batch 8)")
    ap.add_argument("--eval-examples", type=int, default=24, help="eval examples (0: no eval data); default 24")
    ap.add_argument("--epochs", type=int, default=2, help="default 2")
    ap.add_argument("--batch-size", type=int, default=8, help="default 8")
    ap.add_argument("--steps", type=int, default=None, help="calibration steps (default: calibrate's default)")
    ap.add_argument("--checkpoint-every", type=int, default=None, help="default: the job default (local.checkpoint_every)")
    ap.add_argument("--max-seq-len", type=int, default=None, help="default: the job default")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--source", type=Path, default=BANKING, help="banking77 train.csv (columns text, category)")
    ap.add_argument("--tolerance", type=float, default=0.25, help="PASS when |ratio - 1| <= this; default 0.25")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed for the data; default 0")
    a = ap.parse_args(argv)
    for name in ("examples", "epochs", "batch_size"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.eval_examples < 0 or not (0 < a.tolerance < 1):
        ap.error("--eval-examples must be >= 0 and --tolerance between 0 and 1")
    return a


def load_avg() -> str:
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def make_data(args, tmp: Path) -> tuple[Path, Path | None, str]:
    """Prepared banking77 records: (train.jsonl, eval.jsonl or None, description)."""
    from ftclient.data.prepare import prepare

    need = args.examples + args.eval_examples
    if args.source.is_file():
        with open(args.source, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        rng = random.Random(args.seed)
        rows = rng.sample(rows, min(len(rows), int(need * 1.3) + 20))
        src = tmp / "sample.csv"
        with open(src, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["text", "category"])
            w.writeheader()
            for r in rows:
                w.writerow({"text": r["text"], "category": r["category"]})
        what = f"{len(rows):,} random rows of {args.source.name} (seed {args.seed})"
    else:
        from ftclient.demo import sample_path

        src = sample_path()
        what = f"the bundled {src.name} ({args.source} not found)"
    prepared = tmp / "prepared"
    prepare(src, prepared, input_col="text", output_col="category", system=SYSTEM_PROMPT, eval_fraction=0.1,
            seed=args.seed)
    lines = [ln for name in ("train.jsonl", "eval.jsonl") if (prepared / name).is_file()
             for ln in (prepared / name).read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) < need:
        raise SystemExit(f"error: only {len(lines)} prepared records; ask for fewer --examples/--eval-examples")
    train = tmp / "train.jsonl"
    train.write_text("\n".join(lines[:args.examples]) + "\n", encoding="utf-8")
    ev = None
    if args.eval_examples:
        ev = tmp / "eval.jsonl"
        ev.write_text("\n".join(lines[args.examples:need]) + "\n", encoding="utf-8")
    return train, ev, f"{what}, prepared by ftclient.data.prepare: {args.examples} train + {args.eval_examples} eval records"


def verdict(ratio: float, tol: float) -> str:
    return "PASS" if abs(ratio - 1) <= tol else "FAIL"


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    assert "torch" not in sys.modules, "nothing heavy may be imported before the calibration"
    from ftclient.errors import FtcError
    from ftclient.local_backend import calibrate as C
    from ftclient.spec import parse_spec

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = load_avg()
    try:
        with tempfile.TemporaryDirectory(prefix="ftc-calib-bench-") as tmp_s:
            tmp = Path(tmp_s)
            train_file, eval_file, data_what = make_data(args, tmp)
            d = {"name": "calibrate-accuracy", "base_model": args.model, "method": "sft", "adapter": "lora",
                 "data": {"train": str(train_file), **({"eval": str(eval_file)} if eval_file else {})},
                 "hyperparameters": {"epochs": args.epochs, "batch_size": args.batch_size},
                 "local": {"device": args.device}}
            if args.max_seq_len:
                d["hyperparameters"]["max_seq_len"] = args.max_seq_len
            if args.checkpoint_every:
                d["local"]["checkpoint_every"] = args.checkpoint_every
            spec = parse_spec(d, source="benchmark spec")
            offline = C.offline_counts(spec)

            print("Calibrated estimate vs the real local run (ftc cost estimate --calibrate), one run")
            print(f"date: {date}; machine: {os.cpu_count()} cores, {platform.machine()}, "
                  f"Python {platform.python_version()}; load average before {load_before}")
            print(f"data: {data_what}")

            def show(phase, done, total):
                if phase != "step" or done in (0, total):
                    print(f"  calibrating: {phase}" + (f" {done}/{total}" if phase == "step" else ""), flush=True)

            t = time.monotonic()
            cal = C.calibrate(spec, steps=args.steps or C.DEFAULT_STEPS, progress=show, cache=False)
            cal_wall = time.monotonic() - t
            s, c, m, p = cal.settings, cal.counts, cal.measured, cal.prediction
            from importlib.metadata import version

            print(f"software: torch {version('torch')}, transformers {version('transformers')}, trl {version('trl')}, "
                  f"peft {version('peft')}")
            print(f"settings: model {cal.model_source}; device {cal.device} {cal.precision} ({cal.device_name}); "
                  f"LoRA r={s.lora_r}; batch {s.batch_size} x {s.gradient_accumulation_steps}; {s.epochs} epochs; "
                  f"max_seq_len {s.max_seq_len}; checkpoint every {s.save_steps} steps; "
                  f"eval data {'yes' if s.has_eval else 'no'}")
            print(f"tokens per epoch: trainer {c.tokens_per_epoch:,} ({c.rows} rows); offline count "
                  f"{offline.tokens_per_epoch:,} ({offline.rows} rows; {offline.basis.split(':')[0]}) -> "
                  f"{'equal' if offline.tokens_per_epoch == c.tokens_per_epoch else 'DIFFERENT'}")
            print(f"calibration: {cal.calibration_steps} steps, {cal_wall:.1f} s in all; imports {m.imports_s:.1f} s, "
                  f"model load {m.model_load_s:.1f} s, trainer build {m.trainer_build_s:.1f} s, start "
                  f"{m.trainer_start_s:.1f} s, warm-up {sum(m.step_seconds[:m.warmup_used]):.2f} s, steady "
                  f"{m.seconds_per_step:.2f} s/step at {m.tokens_per_step:.0f} tokens/step, checkpoint save "
                  f"{m.checkpoint_save_s or 0:.2f} s, eval {m.eval_s or 0:.2f} s, final save {m.final_save_s:.2f} s")
            print(f"prediction: {p.optimizer_steps} steps, {p.tokens:,} tokens, {p.checkpoint_saves} checkpoint saves, "
                  f"{p.evaluations} evaluations: setup {p.setup_s:.1f} + warm-up {p.warmup_s:.1f} + steps "
                  f"{p.steps_s:.1f} + saves {p.checkpoints_s:.1f} + evals {p.evaluations_s:.1f} + final "
                  f"{p.final_save_s + p.finish_s:.1f} = {p.total_s:.1f} s")
            print(f"  ({p.steps_basis})")
            print(f"  calibration step times: {[round(x, 2) for x in m.step_seconds]} s")

            spec_file = tmp / "spec.json"
            spec_file.write_text(json.dumps(spec.model_dump(mode="json")), encoding="utf-8")
            (tmp / "child.py").write_text(CHILD, encoding="utf-8")
            out = tmp / "run"
            print("real run: a fresh process runs train() ...", flush=True)
            env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
            t = time.monotonic()
            proc = subprocess.run([sys.executable, str(tmp / "child.py"), str(spec_file), str(out)],
                                  capture_output=True, text=True, env=env)
            wall = time.monotonic() - t
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
                print(f"error: the real run failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            res = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
            mk = res["marks"]
            ends = mk["ends"]
            spans = list(zip([mk["begin"]] + ends[:-1], ends))
            pauses = mk["evals"] + mk["saves"]
            clean = sorted(b - a for a, b in spans[1:] if not any(a < x <= b for x in pauses))
            median = clean[len(clean) // 2] if clean else float("nan")
            print(f"real run: process wall {wall:.1f} s (imports {res['imports_s']:.1f} s, train() {res['train_s']:.1f} s); "
                  f"{res['steps']}/{res['max_steps']} steps, {res['tokens_seen']:,} tokens seen, "
                  f"{len(mk['saves'])} checkpoint saves and {len(mk['evals'])} evaluations in the loop; "
                  f"setup in train() {mk['begin'] - res['t1']:.1f} s, first step {spans[0][1] - spans[0][0]:.2f} s, "
                  f"median later step {median:.2f} s")
            k = len(m.step_seconds)
            later = [b - a for a, b in spans[k:] if not any(a < x <= b for x in pauses)]
            print(f"  real step times: first {k} {[round(b - a, 2) for a, b in spans[:k]]} s; the {len(later)} later "
                  f"steps (without evaluation/save pauses) mean {sum(later) / max(len(later), 1):.2f} s, range "
                  f"{min(later, default=0):.2f}-{max(later, default=0):.2f} s")
            seen = [b - a for a, b in zip([0] + mk["seen"][:-1], mk["seen"])][:len(m.step_tokens)]
            print(f"the first {len(seen)} steps of the real run fed {'the same' if seen == m.step_tokens else 'OTHER'} "
                  f"token counts as the calibration's ({seen} vs {m.step_tokens})")
            print(f"load average after: {load_avg()}")

            pred_total, meas_total = p.total_s, wall
            pred_train = p.total_s - m.imports_s
            meas_train = res["train_s"]
            r1, r2 = pred_total / meas_total, pred_train / meas_train
            counts_ok = res["max_steps"] == p.optimizer_steps and res["tokens_seen"] == p.tokens
            print(f"counts: predicted {p.optimizer_steps} steps / {p.tokens:,} tokens, the run had {res['max_steps']} / "
                  f"{res['tokens_seen']:,} -> {'equal' if counts_ok else 'DIFFERENT'}")
            print(f"whole process: predicted {pred_total:.1f} s, measured {meas_total:.1f} s, ratio {r1:.3f} "
                  f"({verdict(r1, args.tolerance)})")
            print(f"train() alone: predicted {pred_train:.1f} s, measured {meas_train:.1f} s, ratio {r2:.3f} "
                  f"({verdict(r2, args.tolerance)})")
            ok = verdict(r1, args.tolerance) == verdict(r2, args.tolerance) == "PASS"
            print(f"RESULT: predicted {pred_total:.1f} s vs measured {meas_total:.1f} s = {r1:.2f}x "
                  f"({'PASS' if ok else 'FAIL'}: both ratios within 1 +- {args.tolerance:g})")
            return 0 if ok else 2
    except FtcError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
