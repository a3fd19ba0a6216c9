"""``prepare``: raw CSV/JSON/JSONL -> clean, PII-checked, split ChatML JSONL and a report.

Two passes, memory bounded by per-record metadata rather than by the data:

1. stream the input (:func:`~ftclient.data.readers.read_examples`), drop unusable and
   duplicate records, scan (and optionally redact) PII, and spool each kept record as
   one JSON line to an anonymous temporary file in the output directory, remembering
   only its offset, a 64-bit hash, a MinHash signature and a label id;
2. split (seeded, stratified by label when the outputs are labels) and copy the spooled
   lines to ``train.jsonl`` and ``eval.jsonl`` in a seeded shuffled order, then write
   ``report.json``. All three are written atomically: on any error none of them appears.

The same input, options and seed give byte-identical output files.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError, UsageError
from ..fileio import atomic_writer, check_input_file, dumps_jsonl, remove_stale_temps, write_error
from ..validation.engine import checkable_backends, make_checker
from . import pii as pii_mod
from .clean import ExactDeduper, NearDupIndex, normalize, record_text
from .convert import DPO, REASONS
from .readers import detect_format, read_examples
from .split import assign_split, eval_size

ProgressFn = Callable[[str, int, "int | None"], None]  # (phase, done, total)
LogFn = Callable[[str], None]

EXAMPLE_LINES = 5  # line numbers kept per drop reason / PII kind
LABEL_MAX_CHARS = 64  # an output longer than this is not a label
LABEL_MAX_WORDS = 8
LABEL_MAX_DISTINCT = 1000
FEW_EXAMPLES = 5  # a label with fewer examples is warned about
IMBALANCE_RATIO = 10.0  # largest / smallest label count that is warned about
NUM_PERM = 64


@dataclass
class PrepareReport:
    """Everything ``prepare`` did; ``to_dict()`` is what ``report.json`` holds."""

    input: str
    format: dict
    kind: str
    columns: dict | None
    system: str | None
    counts: dict
    dropped_examples: dict
    pii: dict
    labels: dict | None
    split: dict
    near_dup: dict
    outputs: dict
    provider_minimums: dict = field(default_factory=dict)
    """``{provider: {min_examples, train_ok, eval_ok}}``: each file against the least number
    of examples the provider's validation takes in a file (``ftc data validate``)."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Labels:
    """Collects the final answers while they look like class labels."""

    def __init__(self) -> None:
        self.possible = True
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.per_record = array("l")

    def add(self, record: dict) -> None:
        if not self.possible:
            return
        msgs = record.get("messages")
        roles = [m["role"] for m in msgs] if msgs else []
        answer = msgs[-1]["content"] if msgs else ""
        if (
            roles not in (["user", "assistant"], ["system", "user", "assistant"])
            or len(answer) > LABEL_MAX_CHARS
            or "\n" in answer
            or len(answer.split()) > LABEL_MAX_WORDS
        ):
            self._give_up()
            return
        i = self.ids.get(answer)
        if i is None:
            if len(self.names) >= LABEL_MAX_DISTINCT:
                self._give_up()
                return
            i = self.ids[answer] = len(self.names)
            self.names.append(answer)
        self.per_record.append(i)

    def _give_up(self) -> None:
        self.possible = False
        self.ids, self.names, self.per_record = {}, [], array("l")

    def usable(self, n: int) -> bool:
        return self.possible and n >= 2 and len(self.per_record) == n and 2 <= len(self.names) and 2 * len(self.names) <= n


def _check_options(eval_fraction: float, near_dup_threshold: float | None) -> None:
    if not 0 <= eval_fraction < 1:
        raise UsageError(f"--eval-fraction must be at least 0 and below 1, not {eval_fraction}", hint="e.g. --eval-fraction 0.1")
    if near_dup_threshold is not None and not 0 < near_dup_threshold <= 1:
        raise UsageError(
            f"--near-dup-threshold must be above 0 and at most 1, not {near_dup_threshold}",
            hint="e.g. 0.9 (Jaccard similarity); or --no-near-dup to turn it off.",
        )


def _open_out_dir(out_dir: str | os.PathLike) -> tuple[Path, bool]:
    """Create the output directory if needed; return it and whether it was created."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory", hint="Give a directory for --out-dir.")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{out}: cannot create the output directory ({e.strerror})", hint="Choose a writable --out-dir.") from None
    return out, created


def prepare(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    input_col: str | None = None,
    output_col: str | None = None,
    system: str | None = None,
    eval_fraction: float = 0.1,
    seed: int = 42,
    redact: bool = False,
    near_dup_threshold: float | None = 0.9,
    progress: ProgressFn | None = None,
    log: LogFn | None = None,
) -> PrepareReport:
    """Prepare ``input_path`` into ``out_dir``/train.jsonl, eval.jsonl and report.json.

    ``near_dup_threshold=None`` turns near-duplicate removal off. ``progress`` is called
    as ``progress(phase, done, total)`` with phase ``"read"`` (characters of the input
    read; total its size in bytes) and ``"write"`` (records written). ``log`` receives
    short messages such as the detected format. Raises DataError / UsageError.
    """
    _check_options(eval_fraction, near_dup_threshold)
    if not os.fspath(out_dir):  # Path("") is the current directory
        raise UsageError("--out-dir is empty", hint="Give a directory for the output, e.g. --out-dir data/ "
                                                    "(--out-dir . for the current one).")
    if os.path.isdir(out_dir):  # what a killed run left, even if this one fails
        remove_stale_temps(out_dir, ("train.jsonl", "eval.jsonl", "report.json"))
    src = check_input_file(input_path)
    fmt = detect_format(src, input_col=input_col, output_col=output_col)
    if log:
        log(f"detected format: {fmt.describe()}")
    system = system.strip() if system and system.strip() else None
    if system is not None and not _is_text(system):
        raise UsageError("--system holds bytes that are not valid text in this locale",
                         hint="Give the system prompt as UTF-8 text.")
    out, created = _open_out_dir(out_dir)
    try:
        spool = tempfile.TemporaryFile(dir=out, prefix=".ftc-prepare-")
    except OSError as e:
        if created:
            _rmdir_quietly(out)
        raise UsageError(f"{out}: cannot write in the output directory ({e.strerror})", hint="Choose a writable --out-dir.") from None
    try:
        with spool:
            return _run(src, out, fmt, spool, system=system, eval_fraction=eval_fraction, seed=seed, redact=redact,
                        near_dup_threshold=near_dup_threshold, progress=progress, log=log)
    except OSError as e:  # the disk filled up (or went read-only) while writing: one message
        if created:
            _rmdir_quietly(out)
        mapped = write_error(out, e)
        if mapped is None:
            raise
        raise mapped from None
    except BaseException:
        if created:
            _rmdir_quietly(out)
        raise


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: undecodable command-line bytes
        return False
    return True


def _rmdir_quietly(p: Path) -> None:
    try:
        p.rmdir()
    except OSError:
        pass


def _run(src: Path, out: Path, fmt, spool, *, system, eval_fraction, seed, redact, near_dup_threshold, progress, log) -> PrepareReport:
    total_bytes = src.stat().st_size
    read = 0
    dropped: Counter[str] = Counter()
    dropped_lines: dict[str, list[int]] = {}
    exact = ExactDeduper()
    near = NearDupIndex(near_dup_threshold, num_perm=NUM_PERM) if near_dup_threshold is not None else None
    pii_counts: Counter[str] = Counter()
    pii_lines: dict[str, list[int]] = {}
    records_with_pii = 0
    labels = _Labels() if fmt.kind != DPO else None
    offsets = array("q")

    def drop(reason: str, line: int) -> None:
        dropped[reason] += 1
        lines = dropped_lines.setdefault(reason, [])
        if len(lines) < EXAMPLE_LINES:
            lines.append(line)

    on_read = (lambda done: progress("read", min(done, total_bytes), total_bytes)) if progress else None
    for ex in read_examples(src, fmt=fmt, system=system, progress=on_read):
        read += 1
        rec = ex.record
        if rec is None:
            drop(ex.reason or "missing_field", ex.line)
            continue
        norm = normalize(record_text(rec))
        if exact.seen(norm):
            drop("exact_duplicate", ex.line)
            continue
        if near is not None and near.check_add(norm):
            drop("near_duplicate", ex.line)
            continue
        found = False
        for m in _messages(rec):
            hits = pii_mod.scan(m["content"])
            if not hits:
                continue
            found = True
            for h in hits:
                pii_counts[h.kind] += 1
                lines = pii_lines.setdefault(h.kind, [])
                if len(lines) < EXAMPLE_LINES and (not lines or lines[-1] != ex.line):
                    lines.append(ex.line)
            if redact:
                m["content"] = pii_mod.redact(m["content"], hits)
        records_with_pii += found
        if labels is not None:
            labels.add(rec)
        offsets.append(spool.tell())
        spool.write(dumps_jsonl(rec).encode("utf-8") + b"\n")  # the reader refused what is not text
    kept = len(offsets)
    if read == 0:
        raise DataError(f"{src}: no records found", hint="Give a file with at least one example.")
    if kept == 0:
        why = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in dropped.most_common())
        top = dropped.most_common(1)[0][0]
        first = dropped_lines.get(top, [0])[0]
        raise DataError(
            f"{src}: no usable records ({read} read, all dropped: {why}; first at line {first})",
            hint=f"{REASONS.get(top, top)}. Check the format ({fmt.describe()}).",
        )
    warnings: list[str] = []
    labelled = labels is not None and labels.usable(kept)
    is_eval = assign_split(labels.per_record if labelled else None, kept, eval_fraction, seed)
    n_eval = sum(is_eval)
    if kept == 1 and eval_fraction > 0:
        warnings.append("only one usable record: it goes to train and eval.jsonl is empty")
    minimums, small = _size_checks(kept, n_eval, eval_fraction, seed, labels.per_record if labelled else None)
    warnings += small

    train_path, eval_path, report_path = out / "train.jsonl", out / "eval.jsonl", out / "report.json"
    order = array("l", range(kept))
    random.Random(f"ftc-prepare-order:{seed}").shuffle(order)

    label_info = None
    if labelled:
        label_info, label_warnings = _label_report(labels, is_eval)
        warnings += label_warnings
    if pii_counts and not redact:
        warnings.append(
            f"{records_with_pii} record(s) contain personal data or secrets "
            f"({', '.join(f'{n} {k}' for k, n in sorted(pii_counts.items()))}); rerun with --redact to replace them"
        )
    report = PrepareReport(
        input=str(src),
        format=fmt.to_dict(),
        kind=fmt.kind,
        columns={"input": fmt.input_col, "output": fmt.output_col} if fmt.schema.startswith("columns") else None,
        system=system,
        counts={
            "read": read,
            "kept": kept,
            "train": kept - n_eval,
            "eval": n_eval,
            "dropped_total": sum(dropped.values()),
            "dropped": {r: dropped.get(r, 0) for r in REASONS},
        },
        dropped_examples={r: dropped_lines[r] for r in REASONS if r in dropped_lines},
        pii={
            "redacted": redact,
            "records_with_pii": records_with_pii,
            "total": sum(pii_counts.values()),
            "by_kind": {k: pii_counts.get(k, 0) for k in dict.fromkeys(pii_mod.KINDS)},
            "example_lines": {k: pii_lines[k] for k in pii_mod.KINDS if k in pii_lines},
        },
        labels=label_info,
        split={"seed": seed, "eval_fraction": eval_fraction, "stratified": labelled},
        near_dup={
            "enabled": near is not None,
            "threshold": near_dup_threshold,
            "method": "MinHash LSH over word 3-shingles",
            "num_perm": NUM_PERM,
            "bands": near.bands if near else None,
            "rows": near.rows if near else None,
        },
        outputs={"train": str(train_path), "eval": str(eval_path), "report": str(report_path)},
        provider_minimums=minimums,
        warnings=warnings,
    )
    if log:
        for w in warnings:
            log(f"warning: {w}")

    with atomic_writer(train_path, "wb") as ft, atomic_writer(eval_path, "wb") as fe, atomic_writer(report_path) as fr:
        for n, i in enumerate(order, 1):
            spool.seek(offsets[i])
            line = spool.readline()
            (fe if is_eval[i] else ft).write(line)
            if progress and (n % 1024 == 0 or n == kept):
                progress("write", n, kept)
        json.dump(report.to_dict(), fr, indent=2, ensure_ascii=False)
        fr.write("\n")
    return report


def provider_minimums() -> dict[str, int]:
    """The least number of examples each provider's validation takes in a file, as
    ``ftc data validate`` enforces it (the same for a training and an eval file)."""
    return {p: int(getattr(make_checker(p, None, None), "min_examples", 1) or 1) for p in checkable_backends()}


# Above this many records the eval count of a candidate fraction is computed, not drawn.
_SIMULATE_MAX = 200_000


def _size_checks(kept: int, n_eval: int, eval_fraction: float, seed: int,
                 labels: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each file against every provider's minimum, and a warning (with the fix: an
    ``--eval-fraction`` that satisfies them, or what else to do) when one is too small."""
    mins = provider_minimums()
    n_train = kept - n_eval
    table = {p: {"min_examples": m, "train_ok": n_train >= m, "eval_ok": n_eval >= m} for p, m in mins.items()}
    warnings: list[str] = []
    no_eval = n_eval == 0 and (eval_fraction == 0 or kept == 1)  # said apart (or chosen): not a size problem
    if n_eval == 0 and eval_fraction == 0:
        warnings.append("eval.jsonl is empty (--eval-fraction 0): leave data.eval out of the job spec "
                        "(`ftc spec init` names it); an empty file fails every provider's check")
    short_train = {p: m for p, m in mins.items() if n_train < m}
    short_eval = {} if no_eval else {p: m for p, m in mins.items() if n_eval < m}
    short = {**short_train, **short_eval}
    if not short:
        return table, warnings
    files = ([f"train.jsonl has {n_train} example(s)"] if short_train else []) + \
            ([f"eval.jsonl has {n_eval} example(s)"] if short_eval else [])
    whom = " and ".join(f"{p} (at least {m} in each file it is given, train and eval)" for p, m in short.items())
    need = max(short.values())

    def counts(f: float) -> tuple[int, int]:
        if labels is None or kept > _SIMULATE_MAX:
            e = eval_size(kept, f)
        else:
            e = sum(assign_split(labels, kept, f, seed))
        return kept - e, e

    fix = None
    if not (short_train and eval_fraction == 0):  # else the eval share is not what is short
        for k in sorted(range(1, 100), key=lambda k: (abs(k / 100 - eval_fraction), k)):
            t, e = counts(k / 100)
            if t >= need and e >= need:
                fix = f"rerun with --eval-fraction {k / 100:g} (train {t}, eval {e})"
                if short_eval and not short_train:
                    fix += ", or leave data.eval out of the job spec"
                break
    if fix is None:
        if kept >= need:
            fix = (f"add records ({2 * need} in all: {need} to train on and {need} to evaluate), or rerun with "
                   "--eval-fraction 0 and leave data.eval out of the job spec")
        else:
            fix = f"add records: {need} are needed to train on"
    warnings.append(f"{' and '.join(files)}: too few for {whom}; `ftc data validate` and `ftc train` would "
                    f"refuse it. To fix it: {fix}")
    return table, warnings


def _messages(rec: dict) -> list[dict]:
    if "messages" in rec:
        return rec["messages"]
    return rec["input"]["messages"] + rec["preferred_output"] + rec["non_preferred_output"]


def _label_report(labels: _Labels, is_eval: bytearray) -> tuple[dict, list[str]]:
    n = len(labels.names)
    total = [0] * n
    in_eval = [0] * n
    for i, lab in enumerate(labels.per_record):
        total[lab] += 1
        in_eval[lab] += is_eval[i]
    order = sorted(range(n), key=lambda j: (-total[j], labels.names[j]))
    per_label = {labels.names[j]: {"total": total[j], "train": total[j] - in_eval[j], "eval": in_eval[j]} for j in order}
    hi, lo = total[order[0]], total[order[-1]]
    ratio = hi / lo
    warnings = []
    if ratio >= IMBALANCE_RATIO:
        warnings.append(
            f"labels are strongly imbalanced: {labels.names[order[0]]!r} has {hi} examples, "
            f"{labels.names[order[-1]]!r} only {lo} ({ratio:.0f}x)"
        )
    few = [labels.names[j] for j in order if total[j] < FEW_EXAMPLES]
    if few:
        shown = ", ".join(repr(x) for x in few[:5]) + (f" and {len(few) - 5} more" if len(few) > 5 else "")
        warnings.append(f"{len(few)} label(s) have fewer than {FEW_EXAMPLES} examples: {shown}")
    single = [labels.names[j] for j in order if total[j] == 1]
    if single:
        warnings.append(f"{len(single)} label(s) have a single example, which cannot appear in eval")
    info = {
        "count": n,
        "imbalance_ratio": round(ratio, 2),
        "min_examples": lo,
        "max_examples": hi,
        "per_label": per_label,
    }
    return info, warnings
