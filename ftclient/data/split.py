"""Seeded train/eval split: stratified by label when there are labels, else random.

Stratified: each label ``l`` with ``n_l`` examples gets ``floor(n_l * eval_fraction)`` or
that plus one eval records, the extra ones going by largest remainder until the eval set
has ``round(n * eval_fraction)`` records, so each label's eval share is as close to
``eval_fraction`` as whole records allow. A label with at least 2 examples always keeps
one in train; a label with a single example goes to train (the eval set is then a little
smaller rather than skewing other labels). The same inputs and seed give
the same split on every run and machine (``random.Random`` with a fixed seed).
"""

from __future__ import annotations

import math
import random
from array import array
from typing import Sequence


def eval_size(n: int, eval_fraction: float) -> int:
    """Records to put in eval: n * fraction rounded half up; at least 1 and at most n - 1
    when the fraction is positive and there are at least 2 records."""
    if n < 2 or eval_fraction <= 0:
        return 0
    k = math.floor(n * eval_fraction + 0.5)
    return min(max(k, 1), n - 1)


def assign_split(labels: Sequence[int] | None, n: int, eval_fraction: float, seed: int) -> bytearray:
    """A byte per record, 1 for eval and 0 for train.

    ``labels`` holds a label id (>= 0) per record, or is None for a random split.
    """
    if not 0 <= eval_fraction < 1:
        raise ValueError("eval_fraction must be in [0, 1)")
    is_eval = bytearray(n)
    target = eval_size(n, eval_fraction)
    if target == 0:
        return is_eval
    rng = random.Random(seed)
    if labels is None:
        for i in rng.sample(range(n), target):
            is_eval[i] = 1
        return is_eval
    if len(labels) != n:
        raise ValueError("one label per record is needed")
    groups: dict[int, array] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, array("l")).append(i)
    order = sorted(groups)
    size = {lab: len(groups[lab]) for lab in order}
    cap = {lab: size[lab] - 1 if size[lab] >= 2 else 0 for lab in order}
    quota = {lab: round(size[lab] * eval_fraction, 9) for lab in order}  # 30 * 0.1 is 3.0000000000000004
    take = {lab: min(math.floor(quota[lab]), cap[lab]) for lab in order}
    left = target - sum(take.values())
    if left > 0:
        # Largest remainder first, at most one more per label (never above the label's
        # own quota rounded up); ties broken by a seeded draw, not by label order.
        tiebreak = {lab: rng.random() for lab in order}
        for lab in sorted(order, key=lambda lab: (-(quota[lab] - take[lab]), tiebreak[lab])):
            if left == 0:
                break
            if take[lab] < min(cap[lab], math.ceil(quota[lab])):
                take[lab] += 1
                left -= 1
    for lab in order:
        idx = list(groups[lab])
        rng.shuffle(idx)
        for i in idx[: take[lab]]:
            is_eval[i] = 1
    return is_eval
