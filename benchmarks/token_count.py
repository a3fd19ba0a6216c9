"""Throughput of ftc's token counter vs raw tiktoken, in one run.

    .venv/bin/python benchmarks/token_count.py [--n 50000] [--model openai:gpt-4.1-mini]

Records: banking77 support tickets as SFT examples (system, user, assistant), repeated
to N. Prints:

* raw: ``enc.encode(content)`` of every message content, one thread (the baseline);
* ftc single-thread: ``counter.count_records(records)`` limited to 1 core;
* ftc all cores: ``counter.count_records(records)`` as ftc runs it: from
  ``tokens.parallel.PROCESS_MIN_RECORDS`` records on, forked worker processes (one per core),
  below that threads;
* ftc all cores, threads only (when the above used processes, for comparison);

and the ratio of ftc per core to raw single-threaded (goal >= 0.9x). The machine may
be shared and noisy: the variants run in turn, once per round, so that each round
measures them under the same conditions; best-of and median over the rounds are
printed, and the per-core ratio from the best times and as the median of the
per-round ratios. The counts are also checked against the cookbook formula computed
naively.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftclient import tokens  # noqa: E402
from ftclient.tokens import parallel  # noqa: E402

# banking77's full train.csv in ../shared/datasets/ when present, else the 964-row subset in tests/data/.
_FULL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77" / "train.csv"
BANKING = _FULL if _FULL.is_file() else (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "banking77" / "train_subset.csv")


def load_records(n: int, system: str, unique: bool = False) -> list[dict]:
    if not BANKING.exists():
        raise SystemExit(f"{BANKING}: no such file")
    with open(BANKING, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for i in range(n):
        r = rows[i % len(rows)]
        tag = f" #{i}" if unique else ""
        out.append(
            {
                "messages": [
                    {"role": "system", "content": system + tag},
                    {"role": "user", "content": r["text"] + tag},
                    {"role": "assistant", "content": r["category"] + tag},
                ]
            }
        )
    return out


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, val = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        val = fn()
        best = min(best, time.perf_counter() - t)
    return best, val


def rounds(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Each function once per round, in turn; their times per round and last values."""
    times: dict = {k: [] for k in fns}
    vals: dict = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            vals[k] = fn()
            times[k].append(time.perf_counter() - t)
    return times, vals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=0, help="records (default: 10,003 prepared, 50,000 all-unique)")
    ap.add_argument("--model", default="openai:gpt-4.1-mini")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--system", default="Route the customer's support ticket to exactly one banking intent.")
    a = ap.parse_args()
    for unique in (False, True):
        n = a.n or (50_000 if unique else 10_003)
        print()
        print(
            "== all strings unique (worst case: every system prompt and label differs)"
            if unique
            else "== banking77 as 'ftc data prepare' writes it (one system prompt, 77 labels, each ticket once)"
        )
        run(a, n, unique)


def run(a, n: int, unique: bool) -> None:
    records = load_records(n, a.system, unique)
    counter = tokens.get_counter(a.model)
    enc = counter.encoding
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    contents = [m["content"] for r in records for m in r["messages"]]
    n_msgs = len(contents)

    def raw():
        e = enc.encode
        return sum(len(e(c)) for c in contents)

    def ftc_all():
        return counter.count_records(records)

    orig = parallel.n_threads

    def ftc_one():
        parallel.n_threads = lambda: 1
        try:
            return counter.count_records(records)
        finally:
            parallel.n_threads = orig

    def ftc_threads():
        saved = parallel.PROCESS_MIN_RECORDS
        parallel.PROCESS_MIN_RECORDS = 1 << 62
        try:
            return counter.count_records(records)
        finally:
            parallel.PROCESS_MIN_RECORDS = saved

    uses_processes = cores > 1 and n >= parallel.PROCESS_MIN_RECORDS and parallel.can_fork()
    fns = {"raw": raw, "one": ftc_one, "all": ftc_all}
    if uses_processes:
        fns["threads"] = ftc_threads
    ftc_all()  # warm up (encoding loaded already)
    times, vals = rounds(fns, a.repeat)
    raw_tokens, counts_all = vals["raw"], vals["all"]
    assert vals["one"] == counts_all and vals.get("threads", counts_all) == counts_all
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    t_raw, t_one, t_all = best["raw"], best["one"], best["all"]

    # Naive cookbook formula for a correctness check.
    def naive():
        tot = 0
        for r in records:
            n = tokens.REPLY_PRIMING
            for m in r["messages"]:
                n += tokens.TOKENS_PER_MESSAGE
                for k, v in m.items():
                    n += len(enc.encode(v))
                    if k == "name":
                        n += tokens.TOKENS_PER_NAME
            tot += n
        return tot

    t_naive, naive_total = best_of(naive, 1)
    assert naive_total == sum(counts_all), (naive_total, sum(counts_all))

    def line(name, key, extra=""):
        t = best.get(key, key)
        m = f"(median {med[key] * 1000:7.1f} ms)" if key in med else " " * 23
        print(f"{name:<46} {t * 1000:7.1f} ms {m} {n / t:>9,.0f} records/s {n_msgs / t:>10,.0f} messages/s {extra}")

    print(f"{n:,} records, {n_msgs:,} messages, {raw_tokens:,} content tokens, {cores} cores, {counter.encoding_name}")
    print(f"tiktoken {__import__('tiktoken').__version__}; python {sys.version.split()[0]}")
    print(f"best of {a.repeat} rounds (each round runs every variant once, in turn)")
    line("raw tiktoken encode(content), 1 thread", "raw")
    line("naive cookbook formula, 1 thread", t_naive, "(encodes roles too)")
    line("ftc count_records, 1 core", "one")
    mode = f"{cores} processes (forked)" if uses_processes else f"{cores} threads"
    line(f"ftc count_records, {mode}", "all", "<- what ftc uses")
    if uses_processes:
        line(f"ftc count_records, {cores} threads (no fork)", "threads")
    r_one = t_raw / t_one
    r_all = t_raw / t_all
    per_round = statistics.median(r / f for r, f in zip(times["raw"], times["all"]))
    print(f"ftc 1 core vs raw:              {r_one:.2f}x")
    print(f"ftc {mode} vs raw: {r_all:.2f}x  ({r_all / cores:.2f}x per core; goal >= 0.9x per core)")
    print(f"  median of the per-round ratios: {per_round:.2f}x ({per_round / cores:.2f}x per core)")
    if uses_processes:
        print(f"  threads only: {t_raw / best['threads']:.2f}x ({t_raw / best['threads'] / cores:.2f}x per core)")
    print(f"parallel speed-up 1 -> {cores} cores: {t_one / t_all:.2f}x")
    print(f"total tokens by the formula: {sum(counts_all):,} (naive check passed)")


if __name__ == "__main__":
    main()
