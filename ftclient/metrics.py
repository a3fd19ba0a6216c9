"""Scoring model outputs against references: ``score(metric, predictions, references)``.

Pure Python (no numpy), so ``ftc eval`` can score without importing anything heavy.
Every result is a dict with ``score`` (the primary figure, in [0, 1]) and ``n`` (how many
pairs were scored); some metrics add more:

``exact``
    Normalised exact match, SQuAD style: lower case, punctuation and the articles
    a/an/the removed, whitespace collapsed; ``score`` is the share of equal pairs.
``f1``
    Token-level F1 of the normalised texts (SQuAD): per pair
    ``2 * P * R / (P + R)`` over the multiset of shared tokens; ``score`` is the mean.
    Two empty texts score 1, one empty text scores 0.
``json``
    The prediction parses as JSON (after stripping one surrounding Markdown code
    fence) and equals the reference JSON: objects compare without regard to key order,
    numbers by value (1 == 1.0) but never equal to booleans. Adds ``valid_json``: the
    share of predictions that parse. A reference that is not JSON is a DataError.
``contains``
    The reference appears in the prediction, both case-folded with whitespace collapsed
    (punctuation kept, so ``card_lost`` is found in ``The intent is card_lost.``).
``label``
    Classification. Labels are compared after trimming whitespace, surrounding quotes or
    backticks and a trailing full stop, case-folded. ``score`` = ``accuracy``; also
    ``macro_f1`` (the unweighted mean of the per-label F1 over the labels that occur in
    the references), ``per_label`` ({label: precision, recall, f1, support}), and
    ``confusion``: ``labels`` (the reference labels, sorted), ``columns`` (the labels
    plus ``"(other)"``), ``matrix`` (one row per reference label, one column per
    predicted label, the last column counting predictions outside the label set) and
    ``other`` (the most frequent of those outside predictions, with counts). A label's
    precision is 0 when it was never predicted.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from typing import Any, Sequence

from .errors import DataError, UsageError

__all__ = ["METRICS", "OTHER", "score", "normalize_answer", "normalize_label", "exact", "f1", "json_match",
           "contains", "label"]

#: The metric names ``score`` accepts.
METRICS: tuple[str, ...] = ("exact", "f1", "json", "contains", "label")
#: The confusion-table column for predictions outside the label set.
OTHER = "(other)"
#: How many distinct outside predictions ``label`` lists under ``confusion.other``.
SHOW_OTHER = 10

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


# --------------------------------------------------------------------------- normalising


def normalize_answer(text: Any) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    s = "" if text is None else str(text)
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def normalize_label(text: Any) -> str:
    """A class label as ``label`` compares it: trimmed of whitespace, quotes, backticks and a
    trailing full stop, inner whitespace collapsed, case-folded."""
    s = "" if text is None else str(text)
    prev = None
    while prev != s:
        prev = s
        s = s.strip().strip("`'\"").strip()
        if s.endswith("."):
            s = s[:-1]
    return " ".join(s.split()).casefold()


def _fold(text: Any) -> str:
    return " ".join(("" if text is None else str(text)).split()).casefold()


def _check(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


# --------------------------------------------------------------------------- metrics


def exact(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, Any]:
    _check(predictions, references)
    hits = [1.0 if normalize_answer(p) == normalize_answer(r) else 0.0 for p, r in zip(predictions, references)]
    return {"score": _mean(hits), "n": len(hits)}


def _f1_pair(prediction: Any, reference: Any) -> float:
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not p or not r:
        return 1.0 if p == r else 0.0
    same = sum((Counter(p) & Counter(r)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def f1(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, Any]:
    _check(predictions, references)
    values = [_f1_pair(p, r) for p, r in zip(predictions, references)]
    return {"score": _mean(values), "n": len(values)}


def _parse_json(text: Any) -> tuple[bool, Any]:
    s = "" if text is None else str(text)
    m = _FENCE.match(s)
    if m:
        s = m.group(1)
    try:
        return True, json.loads(s)
    except (ValueError, TypeError):
        return False, None


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def json_match(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, Any]:
    _check(predictions, references)
    valid, hits = [], []
    for i, (p, r) in enumerate(zip(predictions, references)):
        ok_r, ref = _parse_json(r)
        if not ok_r:
            raise DataError(f"reference {i + 1} is not JSON, so the json metric cannot score it",
                            hint="Use --metric exact or contains for free text.")
        ok_p, pred = _parse_json(p)
        valid.append(1.0 if ok_p else 0.0)
        hits.append(1.0 if ok_p and _json_equal(pred, ref) else 0.0)
    return {"score": _mean(hits), "n": len(hits), "valid_json": _mean(valid)}


def contains(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, Any]:
    _check(predictions, references)
    hits = [1.0 if _fold(r) in _fold(p) else 0.0 for p, r in zip(predictions, references)]
    return {"score": _mean(hits), "n": len(hits)}


def label(predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, Any]:
    _check(predictions, references)
    refs = [normalize_label(r) for r in references]
    preds = [normalize_label(p) for p in predictions]
    shown: dict[str, str] = {}  # normalised -> the reference's own spelling (first seen)
    for raw, norm in zip(references, refs):
        shown.setdefault(norm, " ".join(str(raw).split()))
    labels = sorted(shown)
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = [[0] * (len(labels) + 1) for _ in labels]
    other: Counter[str] = Counter()
    for p, r in zip(preds, refs):
        col = index.get(p)
        if col is None:
            col = len(labels)
            other[p] += 1
        matrix[index[r]][col] += 1
    per_label: dict[str, dict[str, Any]] = {}
    f1s = []
    for lab in labels:
        i = index[lab]
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[shown[lab]] = {"precision": precision, "recall": recall, "f1": f, "support": support}
        f1s.append(f)
    accuracy = _mean([1.0 if p == r else 0.0 for p, r in zip(preds, refs)])
    names = [shown[lab] for lab in labels]
    return {
        "score": accuracy,
        "n": len(refs),
        "accuracy": accuracy,
        "macro_f1": _mean(f1s),
        "per_label": per_label,
        "confusion": {
            "labels": names,
            "columns": names + [OTHER],
            "matrix": matrix,
            "other": dict(other.most_common(SHOW_OTHER)),
        },
    }


_FUNCS = {"exact": exact, "f1": f1, "json": json_match, "contains": contains, "label": label}


def score(metric: str, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, Any]:
    """Score ``predictions`` against ``references`` (same length) with ``metric``."""
    fn = _FUNCS.get((metric or "").strip().lower())
    if fn is None:
        import difflib

        close = difflib.get_close_matches((metric or "").lower(), METRICS, n=1)
        hint = (f"Did you mean {close[0]}? " if close else "") + f"Metrics: {', '.join(METRICS)}."
        raise UsageError(f"unknown metric {metric!r}", hint=hint)
    return fn(list(predictions), list(references))
