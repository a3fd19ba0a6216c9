"""Token counts of the data, computed once per tokenizer."""

from __future__ import annotations

from typing import Any

from ..data.parquet import is_parquet_path, read_counts
from ..prices import ModelEntry
from ..tokens import ApproxCounter, HFCounter, OpenAICounter, as_records, get_counter


class Counts:
    """Per-record (total, prompt, completion) counts, computed once per tokenizer; for a
    pre-tokenized Parquet file (``pretokenized``), the file's own exact counts, whatever
    the counter."""

    def __init__(self, records: list[dict], pretokenized: Any = None):
        self.records = records
        self.pretokenized = pretokenized  # ftclient.data.parquet.PretokenizedCounts
        self._cache: dict[tuple, tuple[list[int], list[int], list[int]]] = {}

    @classmethod
    def of(cls, path_or_records: Any) -> "Counts":
        """The counts of a JSONL file or records, or of a pre-tokenized Parquet file."""
        if is_parquet_path(path_or_records):
            return cls([], read_counts(path_or_records))
        return cls(as_records(path_or_records))

    @property
    def n(self) -> int:
        return self.pretokenized.rows if self.pretokenized is not None else len(self.records)

    def counter(self, entry: ModelEntry):
        """The counter of a hosted model: its tokenizer's, or the pre-tokenized file itself."""
        if self.pretokenized is not None:
            return self.pretokenized
        return get_counter(entry.ref, tokenizer=entry.hf_id)

    def split(self, counter) -> tuple[list[int], list[int], list[int]]:
        if self.pretokenized is not None:
            return self.pretokenized.split()  # type: ignore[return-value]
        if isinstance(counter, ApproxCounter):
            return counter.scale(*self.split(counter._base))
        if isinstance(counter, OpenAICounter):
            key: tuple = ("tiktoken", counter.encoding_name)
        elif isinstance(counter, HFCounter):
            key = ("hf", counter.source)
        else:
            key = ("other", id(counter))
        if key not in self._cache:
            self._cache[key] = counter.count_split(self.records)
        return self._cache[key]
