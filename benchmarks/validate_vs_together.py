"""``ftc data validate --provider together`` against the Together SDK's ``check_file``.

Generates a ~100 MB JSONL in the conversational format from banking77-like rows (the
real banking77 train.csv when found, else synthetic rows), then, in one run, times in
separate subprocesses:

- ``ftc data validate FILE --provider together --json`` (the CLI, start-up included),
- ``ftclient.validation.validate_file(FILE, "together")`` (the Python API),
- ``together.lib.utils.check_file(FILE)`` (the SDK's own checker, import included).

Each command runs ``--runs`` times, interleaved; the median wall time is reported.
Peak RSS: ``ru_maxrss`` from ``os.wait4`` on the command (the largest single process of
its tree: ftc forks one worker per CPU core) and, sampled with psutil every 25 ms, the
largest sum over the whole process tree.

What the two check differs: ftc applies Together's documented rules to every line
(format, roles, turn order, weights, tools...); check_file 3.x only checks that the
file is UTF-8 and that each line is a JSON object (it reads the file twice), leaving
the rest to Together's servers.

Usage: python benchmarks/validate_vs_together.py [--size-mb 100] [--out FILE]
       [--source train.csv] [--runs 3] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# banking77's full train.csv in ../shared/datasets/ when present, else the 964-row subset in tests/data/.
_FULL = HERE.parent.parent / "shared" / "datasets" / "banking77" / "train.csv"
DEFAULT_SOURCE = _FULL if _FULL.is_file() else HERE.parent / "tests" / "data" / "banking77" / "train_subset.csv"
SYSTEM = "You are a banking support assistant. Classify the customer's message into one of 77 intents; answer with the intent name only."


def rows(source: Path | None):
    if source and source.exists():
        with open(source, newline="", encoding="utf-8") as f:
            data = [(r["text"], r["category"]) for r in csv.DictReader(f)]
        return data, f"banking77 ({source})"
    rnd = random.Random(0)
    words = "card account transfer payment refund pending declined fee exchange rate top-up cash ATM pin verify identity".split()
    cats = [f"intent_{i}" for i in range(77)]
    data = [(" ".join(rnd.choice(words) for _ in range(rnd.randint(5, 25))).capitalize() + "?", rnd.choice(cats)) for _ in range(10000)]
    return data, "synthetic banking77-like rows"


def make_file(path: Path, size_mb: float, source: Path | None) -> tuple[int, str]:
    data, what = rows(source)
    target = int(size_mb * 1024 * 1024)
    n = size = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        while size < target:
            text, cat = data[n % len(data)]
            line = json.dumps(
                {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}, {"role": "assistant", "content": cat}]},
                ensure_ascii=False,
            ) + "\n"
            f.write(line)
            size += len(line.encode("utf-8"))
            n += 1
    return n, what


def measure(cmd: list[str]) -> dict:
    """Wall time, exit code, stdout and peak RSS of one run of ``cmd``."""
    import psutil

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tree_peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal tree_peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not stop.is_set():
            total = 0
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.Error:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            tree_peak = max(tree_peak, total)
            stop.wait(0.025)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    stop.set()
    th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "rc": proc.returncode, "out": out.decode(errors="replace"), "err": err.decode(errors="replace"),
            "maxrss_mb": ru.ru_maxrss / 1024, "tree_mb": tree_peak / 2**20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=float, default=100)
    ap.add_argument("--out", type=Path, default=None, help="where to write the generated JSONL (default: a temp dir)")
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="banking77 train.csv (default: ../shared/datasets/banking77/train.csv, else tests/data/banking77/)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    a = ap.parse_args(argv)

    tmp = None
    if a.out is None:
        tmp = Path(tempfile.mkdtemp(prefix="ftc-bench-"))
        path = tmp / "train.jsonl"
    else:
        path = a.out
    n, what = make_file(path, a.size_mb, a.source)
    size = path.stat().st_size
    print(f"file: {path}  {size / 2**20:.1f} MiB, {n:,} examples, from {what}")
    print(f"machine: {os.cpu_count()} CPU(s), python {sys.version.split()[0]}")

    py = sys.executable
    ftc = shutil.which("ftc", path=str(Path(py).parent)) or shutil.which("ftc")
    cmds = {
        "ftc CLI": [ftc, "data", "validate", str(path), "--provider", "together", "--json"] if ftc
        else [py, "-m", "ftclient", "data", "validate", str(path), "--provider", "together", "--json"],
        "ftc API": [py, "-c", "import sys,json; from ftclient.validation import validate_file; r=validate_file(sys.argv[1],'together'); "
                    "print(json.dumps({'ok': r.ok, 'examples': r.examples}))", str(path)],
        "together check_file": [py, "-c", "import sys,json; from together.lib.utils import check_file; r=check_file(sys.argv[1]); "
                                "print(json.dumps({'ok': r['is_check_passed'], 'examples': r.get('num_samples')}))", str(path)],
    }
    results: dict[str, list[dict]] = {k: [] for k in cmds}
    try:
        for _ in range(a.runs):
            for name, cmd in cmds.items():
                r = measure(cmd)
                if r["rc"] not in (0, 1):
                    print(f"{name} failed (exit {r['rc']}):\n{r['err'][-2000:]}", file=sys.stderr)
                    return 1
                results[name].append(r)
    finally:
        if tmp is not None and not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'':22}{'median wall':>12}{'runs (s)':>26}{'peak RSS/proc':>15}{'peak RSS tree':>15}  verdict")
    med = {}
    for name, rs in results.items():
        med[name] = statistics.median(r["wall"] for r in rs)
        verdict = json.loads(rs[-1]["out"].strip().splitlines()[-1] if name != "ftc CLI" else rs[-1]["out"])
        runs = " ".join(f"{r['wall']:.2f}" for r in rs)
        print(
            f"{name:22}{med[name]:>11.2f}s{runs:>26}{max(r['maxrss_mb'] for r in rs):>12.1f} MB"
            f"{max(r['tree_mb'] for r in rs):>12.1f} MB  ok={verdict['ok']} examples={verdict['examples']}"
        )
    sdk = med["together check_file"]
    print(f"\nspeed ratio (check_file / ftc CLI): {sdk / med['ftc CLI']:.2f}x")
    print(f"speed ratio (check_file / ftc API): {sdk / med['ftc API']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
