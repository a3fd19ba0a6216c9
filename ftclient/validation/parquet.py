"""Together's pre-tokenized Parquet training files.

Sources: Together's data-preparation guide ("Tokenized data": a ``.parquet`` file with
``input_ids`` (required), ``attention_mask`` (required) and ``labels`` (optional, ``-100``
masks a token out of the loss)) and the file checker of its SDK
(``together.lib.utils.files._check_parquet``: the file loads, it has ``input_ids``, its
columns are among ``PARQUET_EXPECTED_COLUMNS`` = input_ids, attention_mask, labels,
position_ids, at least ``MIN_SAMPLES`` rows). ftc also checks what the SDK leaves to the
server: each column is a list of integers, the lists of one row have the same length
(one entry per token), token ids are not negative, ``attention_mask`` holds 0/1 and
``labels`` token ids or -100.

pyarrow is an optional dependency (``pip install "ftclient[parquet]"``), imported here
only. The file is read in batches of rows, so memory stays bounded. Problems name the
1-based row in ``line`` (0: the whole file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from .common import Findings, TokenStats

# together.lib.constants.PARQUET_EXPECTED_COLUMNS
COLUMNS = ("input_ids", "attention_mask", "labels", "position_ids")
REQUIRED = "input_ids"
DOCUMENTED_REQUIRED = "attention_mask"  # the guide says required; the SDK's check does not
IGNORE_INDEX = -100
BATCH_ROWS = 16384
INSTALL = 'pip install "ftclient[parquet]"'


def import_pyarrow():
    """``(pyarrow, pyarrow.compute, pyarrow.parquet)``; ConfigError (exit 2) with the
    install line when pyarrow is missing."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "checking a Parquet file needs pyarrow, which is not installed",
            hint=f"Install it with: {INSTALL}",
        ) from None
    return pa, pc, pq


def _is_int_list(pa, t) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and pa.types.is_integer(
        t.value_type
    )


def check_parquet(
    path: Path,
    F: Findings,
    *,
    limit: int | None,
    limit_source: str | None,
    on_over_limit: Callable[[int, int], None] | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, TokenStats | None]:
    """Check a pre-tokenized Parquet file; returns ``(rows, token stats)``.

    ``on_over_limit(row, n_tokens)`` is called for each row longer than ``limit``.
    """
    pa, pc, pq = import_pyarrow()
    import numpy as np

    try:
        pf = pq.ParquetFile(str(path))
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as e:
        F.error(0, "invalid_parquet", f"not a readable Parquet file ({type(e).__name__}: {str(e).strip()[:200]})")
        return 0, None
    names = list(schema.names)
    rows = pf.metadata.num_rows
    if REQUIRED not in names:
        F.error(0, "missing_field", f"no '{REQUIRED}' column (columns: {', '.join(names) or 'none'}); Together needs the token ids in '{REQUIRED}'")
    unknown = [n for n in names if n not in COLUMNS]
    for n in unknown:
        F.error(0, "unknown_key", f"column '{n}' is not one Together takes (only {', '.join(COLUMNS)}); drop it")
    if REQUIRED in names and DOCUMENTED_REQUIRED not in names:
        F.warning(
            0,
            "missing_field",
            f"no '{DOCUMENTED_REQUIRED}' column: Together's data-preparation guide lists it as required "
            "(its SDK's file check accepts the file without it); add a list of 1s per row (0 for padding)",
        )
    cols = [n for n in COLUMNS if n in names]
    bad_type = False
    for n in cols:
        t = schema.field(n).type
        if not _is_int_list(pa, t):
            F.error(0, "invalid_field_type", f"column '{n}' must be a list of integers per row, got {t}")
            bad_type = True
    if REQUIRED not in names or bad_type or rows == 0:
        return rows, None

    stats = TokenStats(basis="pre-tokenized: the length of input_ids", exact=True, limit=limit, limit_source=limit_source)
    size = max(1, path.stat().st_size)
    done_rows = 0
    batches = pf.iter_batches(batch_size=BATCH_ROWS, columns=cols)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError, ValueError) as e:
            F.error(done_rows + 1, "invalid_parquet", f"cannot read the rows from here on ({type(e).__name__}: {str(e).strip()[:200]})")
            break
        if batch is None:
            break
        base = done_rows + 1  # the 1-based row of the batch's first row
        lengths: dict[str, Any] = {}
        for n in cols:
            arr = batch.column(n)
            if arr.null_count:
                for i in np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False)):
                    F.error(base + int(i), "missing_field", f"'{n}' is null")
            # -1 marks a null row (reported above)
            lengths[n] = pc.fill_null(pc.list_value_length(arr), -1).to_numpy(zero_copy_only=False).astype(np.int64)
            flat = pc.list_flatten(arr)
            if len(flat) == 0:
                continue
            parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
            values = flat.to_numpy(zero_copy_only=False)
            if flat.null_count:
                isnull = flat.is_null().to_numpy(zero_copy_only=False)
                for i in np.unique(parents[isnull]):
                    F.error(base + int(i), "invalid_token", f"'{n}' holds null values")
                values = np.where(isnull, 0, values)
            if n == "attention_mask":
                wrong = (values != 0) & (values != 1)
                rule = "0 or 1"
            elif n == "labels":
                wrong = (values < 0) & (values != IGNORE_INDEX)
                rule = f"a token id or {IGNORE_INDEX}"
            else:
                wrong = values < 0
                rule = "a token id (0 or more)"
            if wrong.any():
                where = np.flatnonzero(wrong)
                bad_rows, first = np.unique(parents[where], return_index=True)
                for i, j in zip(bad_rows, first):
                    v = values[where[j]]
                    F.error(base + int(i), "invalid_token", f"'{n}' holds {int(v)}; each value must be {rule}")
        ids = lengths[REQUIRED]
        valid = ids >= 0
        for i in np.flatnonzero(ids == 0):
            F.error(base + int(i), "empty_content", f"'{REQUIRED}' is empty")
        for n in cols:
            if n == REQUIRED:
                continue
            other = lengths[n]
            for i in np.flatnonzero(valid & (other >= 0) & (ids != other)):
                F.error(
                    base + int(i),
                    "length_mismatch",
                    f"'{n}' has {int(other[i])} values but '{REQUIRED}' has {int(ids[i])}; give one per token",
                )
        counted = ids[valid]
        if len(counted):
            stats.counted += len(counted)
            stats.total += int(counted.sum())
            lo, hi = int(counted.min()), int(counted.max())
            stats.min = lo if stats.min is None else min(stats.min, lo)
            stats.max = hi if stats.max is None else max(stats.max, hi)
            if limit is not None and hi > limit:
                for i in np.flatnonzero(ids > limit):
                    n_tok = int(ids[i])
                    stats.over_limit += 1
                    stats.over_limit_tokens += n_tok - limit
                    if on_over_limit is not None:
                        on_over_limit(base + int(i), n_tok)
        done_rows += batch.num_rows
        if progress is not None and rows:
            progress(min(size, size * done_rows // rows), size)
    return rows, stats


def is_parquet(path: Path) -> bool:
    """A ``.parquet`` name, or Parquet's magic bytes at the start."""
    if path.suffix.lower() == ".parquet":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False
