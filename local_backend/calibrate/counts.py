"""What a local run trains on, counted as the Trainer counts it, and offline (without torch).

**Counted exactly**, as the Trainer counts: rows = the trainer's processed training set
(TRL drops SFT rows left without a trained token by truncation; packing changes the rows);
micro-batches per epoch = ceil(rows / batch) (floor with ``dataloader_drop_last``); optimizer
steps per epoch = ceil(micro-batches / gradient accumulation), at least 1; steps = ceil(epochs
x that). Tokens = the trainer's tokenization of every row (truncated to ``max_seq_len``).
Positions fed (padding included) = the expectation over random shuffles of the rows into
batches padded to their longest row (exact for padding-free packing).
Checkpoint saves = ceil(steps / checkpoint_every) (every N steps and at the end); evaluations
(with eval data) = the same + 1 (``train`` evaluates once more at the end).

The token counting for offline estimates (:func:`offline_counts`) reads the model's
``tokenizer.json`` with the ``tokenizers`` library and renders its chat template with jinja2,
as transformers does, without importing torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ftclient.errors import UsageError
from ftclient.fileio import count_records
from ftclient.paths import ftc_home

from ..models import _COMPLETE, TOKENIZERS_DIR, resolve_model

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.spec import JobSpec


def micro_batches_per_epoch(rows: int, batch_size: int, *, drop_last: bool = False) -> int:
    """Batches the Trainer's dataloader yields per epoch (one device)."""
    if rows < 0 or batch_size < 1:
        raise UsageError(f"rows must be >= 0 and batch size >= 1 (got {rows}, {batch_size})")
    return rows // batch_size if drop_last else -(-rows // batch_size)


def steps_per_epoch(rows: int, batch_size: int, gradient_accumulation_steps: int = 1, *,
                    drop_last: bool = False) -> int:
    """Optimizer steps per epoch, as ``Trainer.set_initial_training_values`` computes them."""
    n = micro_batches_per_epoch(rows, batch_size, drop_last=drop_last)
    a = max(1, int(gradient_accumulation_steps))
    return max(n // a + int(n % a > 0), 1)


def count_optimizer_steps(rows: int, batch_size: int, gradient_accumulation_steps: int = 1, epochs: float = 1, *,
                          drop_last: bool = False) -> int:
    """The Trainer's ``max_steps`` for ``epochs`` over ``rows`` (0 when the dataloader is empty)."""
    if micro_batches_per_epoch(rows, batch_size, drop_last=drop_last) == 0:
        return 0
    return math.ceil(epochs * steps_per_epoch(rows, batch_size, gradient_accumulation_steps, drop_last=drop_last))


def checkpoint_saves(max_steps: int, save_steps: int) -> int:
    """Checkpoints a run saves: every ``save_steps`` steps and at the last step."""
    return -(-max_steps // max(1, save_steps)) if max_steps > 0 else 0


def evaluations(max_steps: int, save_steps: int, has_eval: bool) -> int:
    """Evaluations a run makes with eval data: with each checkpoint (at the end too) + train()'s final one."""
    return checkpoint_saves(max_steps, save_steps) + 1 if has_eval and max_steps > 0 else 0


@dataclass
class DataCounts:
    """The training data as the trainer sees it."""

    examples: int  # records in the file
    rows: int  # rows of the trainer's processed training set (after TRL's drops / packing)
    tokens_per_epoch: int  # non-padding tokens of those rows
    basis: str
    exact: bool = True
    eval_examples: int = 0
    # token positions fed per epoch, padding included: expected over the random batches (or exact
    # when nothing is padded); None when not known (offline counts, DPO)
    positions_per_epoch: Optional[float] = None
    positions_basis: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tokenizer_folder(model_ref: str) -> Optional[Path]:
    """A folder with the model's ``tokenizer.json``, found without loading anything (None when
    there is none yet: a GGUF model before its one-time conversion or tokenizer extraction,
    :func:`ftclient.local_backend.models.tokenizer_dir`)."""
    src = resolve_model(model_ref)
    if src.kind == "gguf":
        for d in (src.cache_dir, ftc_home() / TOKENIZERS_DIR / src.name):
            if d is not None and (d / _COMPLETE).is_file() and (d / "tokenizer.json").is_file():
                return d
        return None
    return src.path if (src.path / "tokenizer.json").is_file() else None


def offline_counter(model_ref: str):
    """The token counter for a local model, torch-free: exact (its tokenizer.json + chat
    template) when on disk, else the labelled approximation of ``ftclient.tokens``."""
    from ftclient.tokens import ApproxCounter, light_counter

    src = resolve_model(model_ref)
    folder = tokenizer_folder(model_ref)
    if folder is None:
        reason = ("its tokenizer is read from the GGUF file once, not done yet "
                  "(`ftc data validate --provider local --model ...`, a dry run, calibration or "
                  "training does it)" if src.kind == "gguf"
                  else "no tokenizer.json in the model folder")
    else:
        c = light_counter(folder, src.ref)
        if not isinstance(c, str):
            return c
        reason = c
    return ApproxCounter(f"local:{src.name}", reason=reason)


def offline_counts(spec: "JobSpec", records: Optional[list] = None, *, counter: Any = None) -> DataCounts:
    """Rows and tokens per epoch the trainer will see, from the data and the model's tokenizer,
    without torch. SFT: each example's chat-template tokens, truncated to ``max_seq_len``; an
    example whose prompt alone fills ``max_seq_len`` is dropped (TRL drops rows with no trained
    token). DPO: prompt once + both replies. Packing (CUDA) is not modelled here."""
    from ftclient.tokens import as_records

    recs = records if records is not None else as_records(spec.data.train)
    counter = counter if counter is not None else offline_counter(spec.model_for("local"))
    total, prompt, _ = counter.count_split(recs)
    cap = spec.hyperparameters.max_seq_len
    if spec.method == "sft":
        kept = [(t, p) for t, p in zip(total, prompt) if p < cap]
        tokens = sum(min(t, cap) for t, _ in kept)
        rows = len(kept)
    else:
        tokens, rows = sum(total), len(total)
    basis = counter.basis
    if rows != len(recs):
        basis += f"; {len(recs) - rows} example(s) dropped: the prompt alone fills max_seq_len {cap}"
    return DataCounts(examples=len(recs), rows=rows, tokens_per_epoch=tokens, basis=basis,
                      exact=bool(counter.exact), eval_examples=count_lines(spec.data.eval) if spec.data.eval else 0)


def expected_positions(lengths: Sequence[int], batch_size: int, *, drop_last: bool = False, rounds: int = 0,
                       seed: int = 0) -> float:
    """Token positions an epoch feeds when rows are shuffled into batches padded to their longest
    row (what the SFT collator does): the mean over ``rounds`` random shuffles (default: enough
    for about two million rows in all, 5 to 50)."""
    import numpy as np

    n = len(lengths)
    if n == 0:
        return 0.0
    lens = np.asarray(lengths, dtype=np.int64)
    nb = n // batch_size if drop_last else -(-n // batch_size)
    if nb == 0:
        return 0.0
    rounds = rounds or int(min(50, max(5, 2_000_000 // n)))
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(rounds):
        perm = lens[rng.permutation(n)]
        full = perm[: (n // batch_size) * batch_size].reshape(-1, batch_size)
        epoch = float(full.max(axis=1).sum() * batch_size)
        rest = perm[(n // batch_size) * batch_size:]
        if len(rest) and not drop_last:
            epoch += float(rest.max() * len(rest))
        total += epoch
    return total / rounds


def count_lines(path: "str | os.PathLike | None") -> int:
    return 0 if path is None else count_records(path)
