"""Throughput of ftc's token counter vs raw tiktoken, in one run.

    .venv/bin/python benchmarks/token_count.py [--n 50000] [--model openai:gpt-4.1-mini]

Records: banking77 support tickets as SFT examples (system, user, assistant), repeated
to N. Prints:

* raw: ``enc.encode(content)`` of every message content, one thread (the baseline);
* ftc single-thread: ``counter.count_records(records)`` limited to 1 thread;
* ftc all cores: ``counter.count_records(records)`` (what ftc uses);

and the ratio of ftc per core to raw single-threaded (goal >= 0.9x). The counts are
also checked against the cookbook formula computed naively.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftclient import tokens  # noqa: E402

BANKING = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77" / "train.csv"


def load_records(n: int, system: str, unique: bool = False) -> list[dict]:
    path = BANKING if BANKING.exists() else Path("/work/shared/datasets/banking77/train.csv")
    with open(path, newline="", encoding="utf-8") as f:
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=0, help="records (default: 10,003 prepared, 50,000 all-unique)")
    ap.add_argument("--model", default="openai:gpt-4.1-mini")
    ap.add_argument("--repeat", type=int, default=5)
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

    orig = tokens._n_threads

    def ftc_one():
        tokens._n_threads = lambda: 1
        try:
            return counter.count_records(records)
        finally:
            tokens._n_threads = orig

    ftc_all()  # warm up (encoding loaded already)
    t_raw, raw_tokens = best_of(raw, a.repeat)
    t_one, counts_one = best_of(ftc_one, a.repeat)
    t_all, counts_all = best_of(ftc_all, a.repeat)
    assert counts_one == counts_all

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

    def line(name, t, extra=""):
        print(f"{name:<38} {t * 1000:9.1f} ms  {n / t:>11,.0f} records/s  {n_msgs / t:>11,.0f} messages/s {extra}")

    print(f"{n:,} records, {n_msgs:,} messages, {raw_tokens:,} content tokens, {cores} cores, {counter.encoding_name}")
    print(f"tiktoken {__import__('tiktoken').__version__}; python {sys.version.split()[0]}")
    line("raw tiktoken encode(content), 1 thread", t_raw)
    line("naive cookbook formula, 1 thread", t_naive, "(encodes roles too)")
    line("ftc count_records, 1 thread", t_one)
    line(f"ftc count_records, {cores} threads", t_all)
    r_one = t_raw / t_one
    r_all = t_raw / t_all
    print(f"ftc 1 thread vs raw:            {r_one:.2f}x")
    print(f"ftc {cores} threads vs raw:          {r_all:.2f}x  ({r_all / cores:.2f}x per core; goal >= 0.9x per core)")
    print(f"parallel speed-up 1 -> {cores} threads: {t_one / t_all:.2f}x")
    print(f"total tokens by the formula: {sum(counts_all):,} (naive check passed)")


if __name__ == "__main__":
    main()
