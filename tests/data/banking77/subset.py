"""Cut tests/data/banking77/train_subset.csv from BANKING77's train.csv.

    python tests/data/banking77/subset.py path/to/banking77/train.csv

Keeps, in the file's order and unchanged: the first ``PER_INTENT`` rows of every intent
(all 77; with 10 each, a 10 % stratified eval split holds every intent) and every row
that contains a digit (amounts, dates, "last 4 digits", card and PIN talk: real text
that PII detection must not flag). Deterministic: the same source gives the same file
(line endings are written as LF).
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

PER_INTENT = 10
OUT = Path(__file__).resolve().parent / "train_subset.csv"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise SystemExit(__doc__.split("\n\n")[1].strip())
    with open(argv[0], newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    col = header.index("category")
    seen: Counter = Counter()
    kept = []
    for row in rows:
        seen[row[col]] += 1
        if seen[row[col]] <= PER_INTENT or any(ch.isdigit() for ch in row[header.index("text")]):
            kept.append(row)
    tmp = OUT.with_name(OUT.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(kept)
    tmp.replace(OUT)
    print(f"{OUT.name}: {len(kept)} of {len(rows)} rows, {len(seen)} intents", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
