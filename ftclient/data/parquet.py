"""Token counts of a pre-tokenized Parquet training file (Together's "tokenized data").

Such a file holds the tokens themselves: ``input_ids`` (one list of token ids per row),
``attention_mask`` and optional ``labels`` (-100: not trained on). So the counts are exact
and need no tokenizer and no chat template:

* tokens of a row = the length of its ``input_ids``, padding included. Together bills the
  tokens it processes (``n_epochs x tokens of the training file``); every position of
  ``input_ids`` goes through the model, and with packing off Together counts each row at
  its full padded length (``dataset_length x max_seq_length``), so padding is billed too.
  docs/cost.md says more.
* completion tokens of a row = the positions that are trained on: ``labels`` not -100
  (all attended positions when there is no ``labels`` column: Together then trains on
  ``input_ids``); prompt tokens = the other attended positions (``attention_mask`` 1). They
  give the mean tokens per query of a cost comparison.

pyarrow is optional (``pip install "ftclient[parquet]"``) and imported only when a file is
read; the rows are read in batches, so memory holds one batch of tokens plus three
integers per row.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from pathlib import Path

from ..backends import backend_attr
from ..errors import DataError
from ..validation.engine import checkable_backends, make_checker
from ..validation.parquet import import_pyarrow

BASIS = "exact (pre-tokenized): the length of input_ids per row, padding included; no tokenizer used"
QUERY_BASIS = ("per row, from the pre-tokenized data: mean prompt tokens (attended positions whose label is -100) "
               "and mean completion tokens (positions trained on: labels not -100, or every attended position "
               "when there is no labels column)")
BATCH_ROWS = 16384
IGNORE_INDEX = -100


def is_parquet(path: str | os.PathLike) -> bool:
    """A ``.parquet`` name, or Parquet's magic bytes at the start of the file."""
    from ..validation.parquet import is_parquet as check

    return check(Path(path))


def is_parquet_path(value) -> bool:
    """``value`` is a path (not records) to a Parquet file."""
    return isinstance(value, (str, os.PathLike)) and Path(value).is_file() and is_parquet(value)


def parquet_backends() -> list[str]:
    """The installed backends that take pre-tokenized Parquet training files (their data
    checker says so: ``takes_parquet``)."""
    return [p for p in checkable_backends() if make_checker(p, None, None).takes_parquet]


def not_jsonl_error(path: str | os.PathLike, who: str, *, plural: bool = False) -> DataError:
    """The refusal of ``who`` (a backend, a model, a command) that reads JSONL chat records only."""
    takers = parquet_backends()
    names = ", ".join(backend_attr(p, "display") or p for p in takers) or "no installed backend"
    use = " or ".join(f"--backend {p}" for p in takers)
    return DataError(
        f"{path}: a pre-tokenized Parquet file, a format only {names} takes; {who} "
        f"{'need' if plural else 'needs'} JSONL chat records",
        hint=(f"Use the file with {use} (a model of that backend), or give" if use else "Give")
             + " chat records as JSONL (ftc data prepare writes them).",
    )


@dataclass
class PretokenizedCounts:
    """Per-row token counts of a pre-tokenized Parquet file (see the module's docstring)."""

    path: str
    totals: array  # tokens per row: len(input_ids)
    prompt: array  # attended tokens not trained on
    completion: array  # tokens trained on
    has_labels: bool
    has_attention_mask: bool
    basis: str = BASIS
    query_basis: str = QUERY_BASIS
    exact: bool = True

    @property
    def rows(self) -> int:
        return len(self.totals)

    def split(self) -> tuple[array, array, array]:
        """``(total, prompt, completion)`` tokens per row, as the counters of :mod:`ftclient.tokens` give them."""
        return self.totals, self.prompt, self.completion


def _int_list(pa, t) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) \
        and pa.types.is_integer(t.value_type)


def _per_row(np, pc, arr, n: int, keep) -> "object":
    """The number of values per row of the list array ``arr`` for which ``keep(values)`` holds."""
    flat = pc.list_flatten(arr)
    if len(flat) == 0:
        return np.zeros(n, dtype=np.int64)
    parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
    values = flat.to_numpy(zero_copy_only=False)
    return np.bincount(parents, weights=keep(values), minlength=n).astype(np.int64)


def read_counts(path: str | os.PathLike) -> PretokenizedCounts:
    """Token counts of each row of a pre-tokenized Parquet file, read in batches.

    A file pyarrow cannot read, without an ``input_ids`` column of integer lists, with a
    null or empty ``input_ids`` row, or without rows raises DataError (``ftc data validate
    FILE --provider together`` lists every problem); without pyarrow, ConfigError (exit 2)
    with the install line.
    """
    pa, pc, pq = import_pyarrow()
    import numpy as np

    p = Path(path)
    hint = f"See every problem with `ftc data validate {p} --provider together`."
    try:
        pf = pq.ParquetFile(str(p))
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable Parquet file ({type(e).__name__}: {str(e).strip()[:200]})",
                        hint=hint) from None
    names = list(schema.names)
    if "input_ids" not in names:
        raise DataError(f"{p}: no 'input_ids' column (columns: {', '.join(names) or 'none'}); a pre-tokenized file "
                        "holds the token ids of each row in 'input_ids'", hint=hint)
    cols = [c for c in ("input_ids", "attention_mask", "labels") if c in names]
    for c in cols:
        if not _int_list(pa, schema.field(c).type):
            raise DataError(f"{p}: column '{c}' must be a list of integers per row, got {schema.field(c).type}",
                            hint=hint)
    totals, prompt, completion = array("q"), array("q"), array("q")
    done = 0
    try:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
            n = batch.num_rows
            ids = batch.column("input_ids")
            if ids.null_count:
                first = int(np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False))[0])
                raise DataError(f"{p}: row {done + first + 1}: 'input_ids' is null", hint=hint)
            length = pc.list_value_length(ids).to_numpy(zero_copy_only=False).astype(np.int64)
            if n and int(length.min()) == 0:
                raise DataError(f"{p}: row {done + int(np.flatnonzero(length == 0)[0]) + 1}: 'input_ids' is empty",
                                hint=hint)
            if "attention_mask" in cols and not batch.column("attention_mask").null_count:
                attended = _per_row(np, pc, batch.column("attention_mask"), n, lambda v: v != 0)
            else:
                attended = length
            if "labels" in cols and not batch.column("labels").null_count:
                trained = _per_row(np, pc, batch.column("labels"), n, lambda v: v != IGNORE_INDEX)
                trained = np.minimum(trained, attended)
            else:
                trained = attended
            totals.extend(length.tolist())
            completion.extend(trained.tolist())
            prompt.extend((attended - trained).tolist())
            done += n
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"{p}: cannot read the rows after row {done} ({type(e).__name__}: {str(e).strip()[:200]})",
                        hint=hint) from None
    if not totals:
        raise DataError(f"{p}: no rows in the file", hint="Give a Parquet file with at least one row.")
    return PretokenizedCounts(path=str(p), totals=totals, prompt=prompt, completion=completion,
                              has_labels="labels" in cols, has_attention_mask="attention_mask" in cols)
