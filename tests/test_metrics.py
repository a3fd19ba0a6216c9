"""ftclient.metrics on small cases worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import pytest

from ftclient.errors import DataError, UsageError
from ftclient.metrics import METRICS, normalize_answer, normalize_label, score


def test_exact_uses_squad_normalisation():
    r = score("exact", ["The Cat!", "cats", "  a  dog ", ""], ["cat", "cat", "Dog", ""])
    # "the cat!" -> "cat" == "cat"; "cats" != "cat"; "a  dog" -> "dog" == "dog"; "" == ""
    assert r == {"score": 3 / 4, "n": 4}
    assert normalize_answer("An  Apple, the end.") == "apple end"


def test_f1_token_overlap():
    r = score("f1", ["the cat sat on the mat", "dog"], ["a cat on a mat", "cat"])
    # pair 1: "cat sat on mat" vs "cat on mat": 3 shared tokens, P = 3/4, R = 3/3,
    #         F1 = 2 * 0.75 * 1 / 1.75 = 6/7; pair 2: nothing shared -> 0; mean = 3/7
    assert r["n"] == 2
    assert r["score"] == pytest.approx(3 / 7)


def test_f1_counts_repeated_tokens_once_per_match():
    # pred "a a a b" -> "b" (articles go); use words that survive: "x x x y" vs "x y y"
    # shared multiset: min(3,1) x + min(1,2) y = 2; P = 2/4, R = 2/3, F1 = 2*(1/2)*(2/3)/(7/6) = 4/7
    assert score("f1", ["x x x y"], ["x y y"])["score"] == pytest.approx(4 / 7)


def test_f1_empty_texts():
    assert score("f1", [""], [""])["score"] == 1.0
    assert score("f1", ["something"], [""])["score"] == 0.0
    assert score("f1", [""], ["something"])["score"] == 0.0


def test_json_metric():
    preds = ['{"a": 1, "b": [1, 2]}', '```json\n{"a": true}\n```', '{"a": 1}', "not json"]
    refs = ['{"b": [1, 2], "a": 1.0}', '{"a": true}', '{"a": true}', '{"a": 1}']
    r = score("json", preds, refs)
    # equal (key order and 1 == 1.0 ignored); equal after the fence is stripped;
    # 1 is not true; the last does not parse -> 2 of 4 equal, 3 of 4 parse
    assert r == {"score": 0.5, "n": 4, "valid_json": 0.75}


def test_json_metric_needs_json_references():
    with pytest.raises(DataError, match="reference 2 is not JSON"):
        score("json", ["{}", "{}"], ["{}", "plain words"])


def test_contains_is_case_and_space_insensitive_but_keeps_punctuation():
    preds = ["The intent is card_lost.", "CARD_LOST", "card lost", "nothing"]
    refs = ["card_lost", "card_lost", "card_lost", "card_lost"]
    assert score("contains", preds, refs) == {"score": 0.5, "n": 4}
    assert score("contains", ["top  up\nnow"], ["Top Up"])["score"] == 1.0


def test_label_accuracy_macro_f1_per_label_and_confusion():
    refs = ["a", "a", "a", "b", "b", "c"]
    preds = ["a", " A. ", "b", "`b`", "x", "c"]
    r = score("label", preds, refs)
    # normalised predictions: a a b b x c -> 4 of 6 right
    assert r["score"] == r["accuracy"] == pytest.approx(4 / 6)
    # a: tp 2, predicted 2, support 3 -> P 1, R 2/3, F1 0.8
    # b: tp 1, predicted 2 (one from a), support 2 -> P 0.5, R 0.5, F1 0.5
    # c: tp 1, predicted 1, support 1 -> 1, 1, 1
    pl = r["per_label"]
    assert pl["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert pl["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert pl["c"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    conf = r["confusion"]
    assert conf["labels"] == ["a", "b", "c"]
    assert conf["columns"] == ["a", "b", "c", "(other)"]
    assert conf["matrix"] == [[2, 1, 0, 0],
                              [0, 1, 0, 1],
                              [0, 0, 1, 0]]
    assert conf["other"] == {"x": 1}
    assert r["n"] == 6


def test_label_never_predicted_has_zero_precision_and_f1():
    r = score("label", ["a", "a"], ["a", "b"])
    # a: tp 1, predicted 2 -> P 0.5, R 1, F1 2/3; b: never predicted -> P 0, R 0, F1 0
    assert r["per_label"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    assert r["confusion"]["matrix"] == [[1, 0, 0], [1, 0, 0]]


def test_label_keeps_the_references_spelling():
    r = score("label", ["card_lost"], ["Card_Lost"])
    assert r["accuracy"] == 1.0 and list(r["per_label"]) == ["Card_Lost"]
    assert normalize_label(' "Card_Lost." ') == "card_lost"


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_has_a_score_and_handles_no_pairs(metric):
    r = score(metric, [], [])
    assert r["score"] == 0.0 and r["n"] == 0


def test_unknown_metric_suggests_the_closest():
    with pytest.raises(UsageError) as ei:
        score("lable", ["a"], ["a"])
    assert "label" in (ei.value.hint or "")


def test_lengths_must_match():
    with pytest.raises(ValueError):
        score("exact", ["a"], ["a", "b"])
