"""prepare end to end: split, labels, determinism, report, CLI, and bad input without traces."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftclient.cli.main import main
from ftclient.data.prepare import prepare
from ftclient.data.split import assign_split, eval_size
from ftclient.errors import DataError

OUTPUTS = ("train.jsonl", "eval.jsonl", "report.json")
#: 964 real rows of BANKING77 (all 77 intents), CC BY 4.0: tests/data/banking77/README.md.
BANKING77 = Path(__file__).resolve().parent / "data" / "banking77" / "train_subset.csv"


def write_csv(path: Path, rows, header=("text", "category")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def labelled_rows(counts: dict[str, int]):
    return [(f"ticket number {i} about {lab} with some words", lab) for lab, n in counts.items() for i in range(n)]


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


# --- split ---------------------------------------------------------------------------


def test_eval_size():
    assert eval_size(10, 0.1) == 1
    assert eval_size(5, 0.1) == 1  # at least one when asked for some
    assert eval_size(15, 0.1) == 2  # rounds half up
    assert eval_size(2, 0.9) == 1  # at least one in train
    assert eval_size(1, 0.5) == 0
    assert eval_size(100, 0) == 0


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    fraction=st.floats(0, 0.95),
    seed=st.integers(0, 2**32),
)
def test_stratified_split_properties(sizes, fraction, seed):
    labels = [lab for lab, n in enumerate(sizes) for _ in range(n)]
    n = len(labels)
    is_eval = assign_split(labels, n, fraction, seed)
    assert is_eval == assign_split(labels, n, fraction, seed)  # deterministic
    per_eval = Counter(lab for lab, e in zip(labels, is_eval) if e)
    for lab, size in enumerate(sizes):
        train = size - per_eval[lab]
        if size >= 2:
            assert train >= 1
        else:
            assert per_eval[lab] == 0
    # each label's eval count is its quota rounded down or up (within its cap)
    limits = [min(s - 1 if s >= 2 else 0, math.ceil(round(s * fraction, 9))) for s in sizes]
    for lab, size in enumerate(sizes):
        assert min(math.floor(round(size * fraction, 9)), limits[lab]) <= per_eval[lab] <= limits[lab]
    assert sum(is_eval) == min(eval_size(n, fraction), sum(limits))


def test_random_split_without_labels():
    a = assign_split(None, 100, 0.2, seed=1)
    assert sum(a) == 20
    assert a == assign_split(None, 100, 0.2, seed=1)
    assert a != assign_split(None, 100, 0.2, seed=2)


# --- end to end ----------------------------------------------------------------------


def test_stratified_and_deterministic(tmp_path):
    counts = {"card_arrival": 40, "top_up": 20, "lost_card": 10, "rare": 2, "single": 1}
    src = write_csv(tmp_path / "t.csv", labelled_rows(counts))
    r1 = prepare(src, tmp_path / "a", seed=7, system="Route the ticket.").to_dict()
    prepare(src, tmp_path / "b", seed=7, system="Route the ticket.")
    for name in ("train.jsonl", "eval.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # the report differs only in the output paths
    rep_a = (tmp_path / "a" / "report.json").read_text().replace(str(tmp_path / "a"), "X")
    rep_b = (tmp_path / "b" / "report.json").read_text().replace(str(tmp_path / "b"), "X")
    assert rep_a == rep_b
    prepare(src, tmp_path / "c", seed=8, system="Route the ticket.")
    assert (tmp_path / "a" / "eval.jsonl").read_bytes() != (tmp_path / "c" / "eval.jsonl").read_bytes()

    assert r1["split"] == {"seed": 7, "eval_fraction": 0.1, "stratified": True}
    per = r1["labels"]["per_label"]
    assert per["card_arrival"] == {"total": 40, "train": 36, "eval": 4}
    assert per["top_up"] == {"total": 20, "train": 18, "eval": 2}
    assert per["lost_card"] == {"total": 10, "train": 9, "eval": 1}
    assert per["rare"]["train"] >= 1 and per["single"] == {"total": 1, "train": 1, "eval": 0}
    assert list(per)[0] == "card_arrival"  # largest first
    assert any("fewer than 5 examples" in w for w in r1["warnings"])
    assert any("imbalanced" in w for w in r1["warnings"])

    train = read_jsonl(tmp_path / "a" / "train.jsonl")
    evals = read_jsonl(tmp_path / "a" / "eval.jsonl")
    assert len(train) == r1["counts"]["train"] and len(evals) == r1["counts"]["eval"]
    assert Counter(r["messages"][-1]["content"] for r in evals) == Counter({"card_arrival": 4, "top_up": 2, "lost_card": 1})
    for r in train + evals:
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
        assert r["messages"][0]["content"] == "Route the ticket."
    # the output order is shuffled (the input is sorted by label)
    assert [r["messages"][-1]["content"] for r in train[:40]] != ["card_arrival"] * 40


def test_free_text_outputs_are_not_labels(tmp_path):
    rows = [(f"question {i}", f"a long and different answer number {i} with many words in it") for i in range(30)]
    src = write_csv(tmp_path / "t.csv", rows, header=("prompt", "answer"))
    r = prepare(src, tmp_path / "o", eval_fraction=0.2).to_dict()
    assert r["labels"] is None and r["split"]["stratified"] is False
    assert (r["counts"]["train"], r["counts"]["eval"]) == (24, 6)


def test_dpo_end_to_end(tmp_path):
    src = tmp_path / "p.jsonl"
    rows = [{"prompt": f"question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"} for i in range(10)]
    rows.append({"prompt": "same?", "chosen": "x", "rejected": " x "})
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = prepare(src, tmp_path / "o", system="Be kind.").to_dict()
    assert r["kind"] == "dpo" and r["format"]["schema"] == "dpo"
    assert r["counts"]["dropped"]["chosen_equals_rejected"] == 1
    rec = read_jsonl(tmp_path / "o" / "train.jsonl")[0]
    assert set(rec) == {"input", "preferred_output", "non_preferred_output"}
    assert rec["input"]["messages"][0] == {"role": "system", "content": "Be kind."}
    assert rec["preferred_output"][0]["role"] == "assistant"


def test_cli_json_output_matches_report(tmp_path, capsys):
    src = write_csv(tmp_path / "t.csv", labelled_rows({"a": 10, "b": 10}))
    code, out, err = run_cli("data", "prepare", str(src), "--out-dir", str(tmp_path / "o"), "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out) == json.loads((tmp_path / "o" / "report.json").read_text())
    assert "detected format: CSV" in err


def test_cli_table_output(tmp_path, capsys):
    src = write_csv(tmp_path / "t.csv", labelled_rows({"a": 10, "b": 10}))
    code, out, _ = run_cli("data", "prepare", str(src), "-o", str(tmp_path / "o"), "--no-near-dup", capsys=capsys)
    assert code == 0
    assert "records read" in out and "label balance" in out and "20" in out


# --- bad input: clear message, right exit code, no traceback, no output files -----------


def _no_outputs(d: Path) -> bool:
    return not d.exists() or not any(d.iterdir())


BAD_INPUTS = {
    "invalid_json": ("d.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": \n', 1, "d.jsonl:2: invalid JSON"),
    "latin1": ("d.csv", "text,label\ncaf\u00e9,x\n".encode("latin-1"), 1, "d.csv:2: not valid UTF-8"),
    "empty": ("d.csv", b"", 1, "the file is empty"),
    "whitespace": ("d.jsonl", b"\n  \n", 1, "no records"),
    "header_only": ("d.csv", b"text,label\n", 1, "no records"),
    "no_guessable_columns": ("d.csv", b"body,tag\nx,y\n", 2, "columns are: body, tag"),
    "unknown_format": ("d.jsonl", b'{"foo": 1}\n', 1, "unknown record format"),
    "all_bad_roles": ("d.jsonl", b'{"messages": [{"role": "robot", "content": "x"}]}\n', 1, "no usable records"),
    "binary": ("d.csv", b"\x00\x01\x02PK\x03\x04" * 100, 1, "binary"),
    "not_json_array": ("d.json", b"42", 1, "expected a JSON array"),
    # an unterminated quote swallows the rest of the file into one field
    "bad_csv_quote": ("d.csv", b'text,label\n"a,b\nc,d\n', 1, "all dropped: 1 missing field"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input(tmp_path, capsys, case):
    name, data, code, message = BAD_INPUTS[case]
    src = tmp_path / name
    src.write_bytes(data)
    out_dir = tmp_path / "out"
    rc, out, err = run_cli("data", "prepare", str(src), "--out-dir", str(out_dir), capsys=capsys)
    assert rc == code, err
    assert message in " ".join(err.split()), err
    assert "Traceback" not in err + out
    assert _no_outputs(out_dir)


def test_missing_input_and_bad_options(tmp_path, capsys):
    rc, _, err = run_cli("data", "prepare", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o"), capsys=capsys)
    assert rc == 2 and "no such file" in err
    src = write_csv(tmp_path / "t.csv", labelled_rows({"a": 3, "b": 3}))
    rc, _, err = run_cli("data", "prepare", str(src), "-o", str(tmp_path / "o"), "--input-col", "txt", capsys=capsys)
    assert rc == 2 and "no column 'txt'" in err and "'text'" in err
    rc, _, err = run_cli("data", "prepare", str(src), "-o", str(tmp_path / "o"), "--eval-fraction", "1", capsys=capsys)
    assert rc == 2 and "eval-fraction" in err
    rc, _, err = run_cli("data", "prepare", str(src), "-o", str(tmp_path / "o"), "--near-dup-threshold", "0.8",
                         "--no-near-dup", capsys=capsys)
    assert rc == 2
    assert _no_outputs(tmp_path / "o")


def test_unwritable_out_dir(tmp_path, capsys):
    src = write_csv(tmp_path / "t.csv", labelled_rows({"a": 3, "b": 3}))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", str(blocker / "sub"), capsys=capsys)
    assert rc == 2 and "cannot create the output directory" in err
    rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", str(blocker), capsys=capsys)
    assert rc == 2 and "not a directory" in err
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", str(ro), capsys=capsys)
            assert rc == 2 and "cannot write" in err
        finally:
            ro.chmod(0o700)


def test_failure_keeps_previous_outputs_untouched(tmp_path):
    src = write_csv(tmp_path / "t.csv", labelled_rows({"a": 5, "b": 5}))
    out = tmp_path / "o"
    prepare(src, out)
    before = {n: (out / n).read_bytes() for n in OUTPUTS}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "robot", "content": "x"}]}\n')
    with pytest.raises(DataError):
        prepare(bad, out)
    assert {n: (out / n).read_bytes() for n in OUTPUTS} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no temp files left


def test_huge_line_is_refused(tmp_path, capsys):
    src = tmp_path / "huge.jsonl"
    with open(src, "wb") as f:
        f.write(b'{"prompt": "' + b"a" * (9 * 1024 * 1024) + b'", "completion": "x"}\n')
    rc, _, err = run_cli("data", "prepare", str(src), "-o", str(tmp_path / "o"), capsys=capsys)
    assert rc == 1 and "longer than" in err
    assert _no_outputs(tmp_path / "o")


def test_real_process_has_no_traceback(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text('{"prompt": "a", "completion": "b"}\nnot json\n')
    proc = subprocess.run(
        [sys.executable, "-c", "from ftclient.cli.main import main; main()", "data", "prepare", str(src),
         "--out-dir", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "d.jsonl:2: invalid JSON" in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_banking77(tmp_path):
    with open(BANKING77, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    per_intent = Counter(row["category"] for row in rows)
    # 10+ rows per intent: a 10 % stratified split must then put each in both splits.
    assert len(per_intent) == 77 and min(per_intent.values()) >= 10
    assert sum(any(c.isdigit() for c in row["text"]) for row in rows) > 200
    r = prepare(BANKING77, tmp_path / "b77", system="Route the ticket to one intent.").to_dict()
    assert r["format"]["input_col"] == "text" and r["format"]["output_col"] == "category"
    assert r["counts"]["read"] == len(rows)
    assert r["labels"]["count"] == len(per_intent)
    assert r["pii"]["total"] == 0  # amounts, dates and "last 4 digits" are not PII
    assert 0.98 * len(rows) < r["counts"]["kept"] <= len(rows)
    assert all(v["train"] >= 1 and v["eval"] >= 1 for v in r["labels"]["per_label"].values())


# --- split sizes against the providers' minimums ----------------------------------------


def _size_warning(report: dict) -> str | None:
    return next((w for w in report["warnings"] if "too few for" in w), None)


def test_a_split_too_small_for_a_provider_is_warned_about_with_the_fix(tmp_path, capsys):
    """45 labelled rows: the default 10% eval set is below OpenAI's minimum per file; prepare
    says so (stderr, report.json, --json) and its --eval-fraction fix works."""
    from ftclient.validation import validate_file
    from ftclient.providers.openai.validation import OpenAIChecker

    least = OpenAIChecker.min_examples  # what `ftc data validate --provider openai` enforces
    src = write_csv(tmp_path / "t.csv", labelled_rows({f"intent_{k}": 9 for k in range(5)}))
    code, out, err = run_cli("data", "prepare", str(src), "--out-dir", str(tmp_path / "a"), "--json", capsys=capsys)
    assert code == 0
    rep = json.loads(out)
    assert rep == json.loads((tmp_path / "a" / "report.json").read_text(encoding="utf-8"))
    n_eval = rep["counts"]["eval"]
    assert n_eval < least
    assert not validate_file(tmp_path / "a" / "eval.jsonl", "openai").ok  # the problem is real
    w = _size_warning(rep)
    assert w is not None and f"eval.jsonl has {n_eval} example(s)" in w and f"openai (at least {least}" in w
    assert "together" not in w and "local" not in w  # their minimum is met
    assert "warning: " in err and "--eval-fraction" in err
    assert rep["provider_minimums"]["openai"] == {"min_examples": least, "train_ok": True, "eval_ok": False}
    assert rep["provider_minimums"]["together"]["eval_ok"] is True
    # the suggested fraction does what it says
    import re

    m = re.search(r"--eval-fraction ([0-9.]+) \(train (\d+), eval (\d+)\)", w)
    assert m, w
    fixed = prepare(src, tmp_path / "b", eval_fraction=float(m.group(1))).to_dict()
    assert (fixed["counts"]["train"], fixed["counts"]["eval"]) == (int(m.group(2)), int(m.group(3)))
    assert fixed["counts"]["eval"] >= least and _size_warning(fixed) is None
    assert all(v["train_ok"] and v["eval_ok"] for v in fixed["provider_minimums"].values())
    assert validate_file(tmp_path / "b" / "eval.jsonl", "openai").ok


def test_too_few_records_for_any_split_says_to_add_records(tmp_path):
    src = write_csv(tmp_path / "t.csv", [(f"question {i} with its own words", f"answer {i} differs") for i in range(15)],
                    header=("prompt", "answer"))
    r = prepare(src, tmp_path / "o").to_dict()
    w = _size_warning(r)
    assert w is not None and "add records" in w and "--eval-fraction 0" in w
    assert r["provider_minimums"]["openai"]["train_ok"] is True  # 13 or 14 of 15
    tiny = prepare(src, tmp_path / "p", eval_fraction=0).to_dict()
    assert any("eval.jsonl is empty" in x and "data.eval" in x for x in tiny["warnings"])
    assert _size_warning(tiny) is None  # 15 to train on is enough everywhere


def test_enough_records_give_no_size_warning(tmp_path):
    src = write_csv(tmp_path / "t.csv", labelled_rows({f"intent_{k}": 40 for k in range(5)}))
    r = prepare(src, tmp_path / "o").to_dict()
    assert _size_warning(r) is None and not any("eval.jsonl is empty" in w for w in r["warnings"])
    assert all(v["train_ok"] and v["eval_ok"] for v in r["provider_minimums"].values())
