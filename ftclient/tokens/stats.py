"""Token statistics of a data set: :func:`count_tokens` reads a JSONL file (or takes
records) and returns :class:`TokenStats` for one model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..data.parquet import is_parquet_path, not_jsonl_error
from ..errors import DataError
from ..fileio import iter_lines
from .records import record_conversations
from .registry import get_counter


@dataclass
class TokenStats:
    """Token counts of a data set for one model."""

    model_ref: str
    examples: int
    total_tokens: int
    max_tokens: int
    mean_tokens: float
    basis: str
    exact: bool
    mean_prompt_tokens: float = 0.0
    mean_completion_tokens: float = 0.0
    per_example: list[int] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "model": self.model_ref,
            "examples": self.examples,
            "total_tokens": self.total_tokens,
            "max_tokens": self.max_tokens,
            "mean_tokens": round(self.mean_tokens, 2),
            "mean_prompt_tokens": round(self.mean_prompt_tokens, 2),
            "mean_completion_tokens": round(self.mean_completion_tokens, 2),
            "basis": self.basis,
            "exact": self.exact,
        }
        if self.per_example is not None:
            d["per_example"] = self.per_example
        return d


def read_records(path: str | os.PathLike) -> list[dict]:
    """The examples of a JSONL file of ChatML records (SFT or DPO).

    A line that is not JSON or not a chat example raises DataError naming its line;
    blank lines are skipped; an empty file is a DataError. A pre-tokenized Parquet file
    is a DataError that says so (its counts: :func:`ftclient.data.parquet.read_counts`).
    """
    if is_parquet_path(path):
        raise not_jsonl_error(path, "reading chat examples (local training, token counts with a tokenizer)")

    records: list[dict] = []
    loads = json.loads
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            rec = loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})",
                hint="Give JSONL: one JSON object per line, as written by 'ftc data prepare'.",
            ) from None
        except RecursionError:
            raise DataError(f"{path}:{lineno}: JSON nested too deeply to be a chat example",
                            hint="Run 'ftc data validate' on the file.") from None
        try:
            record_conversations(rec)
        except (ValueError, RecursionError) as e:
            why = "nested too deeply to be a chat example" if isinstance(e, RecursionError) else str(e)
            raise DataError(f"{path}:{lineno}: {why}", hint="Run 'ftc data validate' on the file.") from None
        records.append(rec)
    if not records:
        raise DataError(f"{path}: no examples in the file", hint="Give a JSONL file with at least one example.")
    return records


def as_records(path_or_records: str | os.PathLike | Iterable[dict]) -> list[dict]:
    if isinstance(path_or_records, (str, os.PathLike)):
        return read_records(path_or_records)
    records = list(path_or_records)
    if not records:
        raise DataError("no examples given", hint="Give at least one example.")
    for i, r in enumerate(records):
        try:
            record_conversations(r)
        except ValueError as e:
            raise DataError(f"example {i + 1}: {e}") from None
    return records


def stats_from_counts(model_ref: str, counter, total, prompt, completion, per_example: bool) -> TokenStats:
    n = len(total)
    return TokenStats(
        model_ref=model_ref,
        examples=n,
        total_tokens=sum(total),
        max_tokens=max(total) if total else 0,
        mean_tokens=sum(total) / n if n else 0.0,
        mean_prompt_tokens=sum(prompt) / n if n else 0.0,
        mean_completion_tokens=sum(completion) / n if n else 0.0,
        basis=counter.basis,
        exact=counter.exact,
        per_example=list(total) if per_example else None,
    )


def count_tokens(
    path_or_records: str | os.PathLike | Iterable[dict],
    model_ref: str,
    *,
    per_example: bool = False,
    tokenizer: str | None = None,
) -> TokenStats:
    """Token statistics of a JSONL file (or a list of records) for ``model_ref``."""
    records = as_records(path_or_records)
    counter = get_counter(model_ref, tokenizer=tokenizer)
    total, prompt, completion = counter.count_split(records)
    return stats_from_counts(model_ref, counter, total, prompt, completion, per_example)
