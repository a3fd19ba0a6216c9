"""Cleaning: normalisation, exact and near-duplicate removal, counts by reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftclient.data.clean import ExactDeduper, NearDupIndex, lsh_params, normalize, shingles
from ftclient.data.prepare import prepare


def test_normalize_nfkc_casefold_whitespace():
    assert normalize("  Ｗhere\tIS   my\u00a0CARD?\n") == "where is my card?"
    assert normalize("Straße") == normalize("STRASSE")


def test_exact_deduper():
    d = ExactDeduper()
    assert not d.seen("a b")
    assert d.seen("a b")
    assert not d.seen("a  b")  # the caller normalises
    assert len(d) == 2


def test_shingles():
    assert shingles("hi there") == {"hi there"}
    assert shingles("a, b c d!") == {"a b c", "b c d"}
    assert shingles("?!") == set()


def test_lsh_params_fit_in_signature():
    for t in (0.5, 0.8, 0.9, 0.95):
        b, r = lsh_params(t, 64)
        assert b * r <= 64
    # A higher threshold needs more rows per band.
    assert lsh_params(0.95, 64)[1] > lsh_params(0.5, 64)[1]


def test_minhash_estimates_jaccard():
    idx = NearDupIndex(0.9)
    a = {f"w{i}" for i in range(100)}
    b = {f"w{i}" for i in range(50, 150)}  # Jaccard 1/3
    est = float((idx.signature(a) == idx.signature(b)).mean())
    assert abs(est - 1 / 3) < 0.2
    assert float((idx.signature(a) == idx.signature(set(a))).mean()) == 1.0


def test_near_dup_index():
    idx = NearDupIndex(0.9)
    base = " ".join(f"word{i}" for i in range(60))
    assert not idx.check_add(base)
    assert idx.check_add(base + " word0")  # 59/60 shingles shared... plus one new
    assert idx.check_add(base.replace("word1 ", "word1, "))  # punctuation only
    assert not idx.check_add(" ".join(f"other{i}" for i in range(60)))
    half = " ".join(f"word{i}" for i in range(30)) + " " + " ".join(f"new{i}" for i in range(30))
    assert not idx.check_add(half)
    assert len(idx) == 3


def test_signatures_do_not_depend_on_hash_seed():
    code = (
        "from ftclient.data.clean import NearDupIndex, shingles;"
        "print(NearDupIndex(0.9).signature(shingles('the quick brown fox jumps over the lazy dog')).tolist())"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": s, "PATH": ""}, capture_output=True,
                       text=True, check=True).stdout
        for s in ("1", "2")
    }
    assert len(outs) == 1


def _write(tmp: Path, rows) -> Path:
    p = tmp / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def pc(prompt, completion):
    return {"prompt": prompt, "completion": completion}


LONG = "I ordered a new debit card two weeks ago and it still has not arrived at my home address, what should I do now"


def test_counts_by_reason(tmp_path):
    rows = [
        pc("Where is my card?", "card_arrival"),
        pc("  where IS my   card? ", "Card_Arrival"),  # exact duplicate after normalisation
        pc("Ｗhere is my card?", "card_arrival"),  # NFKC full-width W: exact duplicate
        pc("", "card_arrival"),  # empty
        pc("Hello", "   "),  # empty
        pc(LONG, "card_arrival"),
        pc(LONG.replace("now", "now?"), "card_arrival"),  # near duplicate (punctuation)
        pc(LONG.replace("home", "house"), "card_arrival"),  # near, but Jaccard well under 0.9
        {"messages": "nope"},  # wrong schema for this file
        pc("How do I top up?", "top_up"),
    ]
    r = prepare(_write(tmp_path, rows), tmp_path / "out", eval_fraction=0).to_dict()
    c = r["counts"]
    assert c["read"] == 10
    assert c["dropped"]["exact_duplicate"] == 2
    assert c["dropped"]["empty_content"] == 2
    assert c["dropped"]["near_duplicate"] == 1
    assert c["dropped"]["missing_field"] == 1
    assert c["kept"] == 4 and c["dropped_total"] == 6
    assert r["dropped_examples"]["exact_duplicate"] == [2, 3]
    assert r["dropped_examples"]["near_duplicate"] == [7]
    lines = (tmp_path / "out" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_near_dup_can_be_turned_off_or_tuned(tmp_path):
    rows = [pc(LONG, "a"), pc(LONG.replace("now", "now?"), "a"), pc(LONG.replace("home", "house"), "a")]
    p = _write(tmp_path, rows)
    off = prepare(p, tmp_path / "o1", near_dup_threshold=None, eval_fraction=0).to_dict()
    assert off["counts"]["kept"] == 3 and off["near_dup"]["enabled"] is False
    loose = prepare(p, tmp_path / "o2", near_dup_threshold=0.5, eval_fraction=0).to_dict()
    assert loose["counts"]["dropped"]["near_duplicate"] == 2


def test_same_text_different_label_is_not_a_duplicate(tmp_path):
    rows = [pc("Where is my card?", "card_arrival"), pc("Where is my card?", "card_delivery_estimate")]
    r = prepare(_write(tmp_path, rows), tmp_path / "o", eval_fraction=0).to_dict()
    assert r["counts"]["kept"] == 2


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_eval_fraction(tmp_path, fraction):
    from ftclient.errors import UsageError

    with pytest.raises(UsageError, match="eval-fraction"):
        prepare(_write(tmp_path, [pc("a", "b")]), tmp_path / "o", eval_fraction=fraction)
    assert not (tmp_path / "o").exists()
