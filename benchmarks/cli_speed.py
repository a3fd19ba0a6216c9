"""Start-up and cost-compare speed of the ``ftc`` CLI.

Measured in one run, each against a baseline taken in the same run:
- ``ftc --help`` against a bare ``python -c pass`` (goal: about 200 ms in all);
- ``ftc cost compare`` on a 1,000-line ChatML file (goal: within 1 s, start-up included),
  against ``python -c "import tiktoken"``, the floor any exact OpenAI count pays.

``--against OTHER_FTC`` (another install's ``ftc``, e.g. of the code before a change) times
both commands of both installs by turns (this one, the other, this one...), so that a
change is measured against the code before it under the same load.

Usage: python benchmarks/cli_speed.py [--runs 7] [--source banking77/train.csv] [--against PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# banking77's full train.csv in ../shared/datasets/ when present, else the 964-row subset in tests/data/.
_FULL = HERE.parent.parent / "shared" / "datasets" / "banking77" / "train.csv"
DEFAULT_SOURCE = _FULL if _FULL.is_file() else HERE.parent / "tests" / "data" / "banking77" / "train_subset.csv"


def timed(cmd: list[str], runs: int) -> float:
    """Median wall seconds of ``cmd`` over ``runs`` runs (after one warm-up)."""
    subprocess.run(cmd, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved(cmds: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median wall seconds of each command, run by turns ``runs`` times (after one warm-up each)."""
    for cmd in cmds.values():
        subprocess.run(cmd, check=True, capture_output=True)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for k, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def make_file(path: Path, source: Path, n: int) -> None:
    rows = []
    if source.exists():
        with open(source, encoding="utf-8") as f:
            rows = [(r["text"], r["category"]) for r in csv.DictReader(f)][:n]
    while len(rows) < n:
        i = len(rows)
        rows.append((f"My card number {i} has not arrived after {i % 17} days, what should I do?", "card_arrival"))
    with open(path, "w", encoding="utf-8") as f:
        for text, label in rows:
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "Route the ticket to one intent."},
                {"role": "user", "content": text},
                {"role": "assistant", "content": label}]}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--against", type=Path, default=None,
                    help="another install's ftc, timed by turns with this one (e.g. the code before a change)")
    args = ap.parse_args()
    if args.against is not None:
        against(args)
        return

    ftc = shutil.which("ftc") or str(Path(sys.executable).with_name("ftc"))
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        make_file(data, args.source, 1000)
        base = timed([py, "-c", "pass"], args.runs)
        help_t = timed([ftc, "--help"], args.runs)
        tik = timed([py, "-c", "import tiktoken"], args.runs)
        compare = timed([ftc, "cost", "compare", str(data), "--json"], args.runs)

    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, median of {args.runs} runs")
    print(f"python -c pass            {base * 1000:8.0f} ms  (baseline)")
    print(f"ftc --help                {help_t * 1000:8.0f} ms  ratio to baseline {help_t / base:5.2f}x  goal ~200 ms")
    print(f"python -c 'import tiktoken' {tik * 1000:6.0f} ms  (baseline)")
    print(f"ftc cost compare 1,000    {compare * 1000:8.0f} ms  ratio to baseline {compare / tik:5.2f}x  goal <= 1000 ms")
    print(f"goals met: help={'yes' if help_t <= 0.25 else 'no'} compare={'yes' if compare <= 1.0 else 'no'}")


def against(args: argparse.Namespace) -> None:
    """This install's ftc and another's, each command by turns, with the same baselines."""
    ftc = shutil.which("ftc") or str(Path(sys.executable).with_name("ftc"))
    other = str(args.against)
    other_py = str(Path(other).with_name("python"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        make_file(data, args.source, 1000)
        help_t = interleaved({"base": [sys.executable, "-c", "pass"], "this": [ftc, "--help"],
                              "other": [other, "--help"]}, args.runs)
        cmp_t = interleaved({"this": [ftc, "cost", "compare", str(data), "--json"],
                             "tik_this": [sys.executable, "-c", "import tiktoken"],
                             "other": [other, "cost", "compare", str(data), "--json"],
                             "tik_other": [other_py, "-c", "import tiktoken"]}, args.runs)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, median of {args.runs} runs by turns")
    print(f"python -c pass                {help_t['base'] * 1000:8.0f} ms  (baseline)")
    for k, name in (("this", ftc), ("other", other)):
        print(f"ftc --help ({k:5})          {help_t[k] * 1000:8.0f} ms  ratio to baseline {help_t[k] / help_t['base']:5.2f}x"
              f"  {name}")
    for k in ("this", "other"):
        tik = cmp_t["tik_" + k]
        print(f"ftc cost compare 1,000 ({k:5}) {cmp_t[k] * 1000:6.0f} ms  ratio to its import tiktoken "
              f"({tik * 1000:.0f} ms) {cmp_t[k] / tik:5.2f}x")


if __name__ == "__main__":
    main()
