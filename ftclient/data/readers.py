"""Reading training data of any supported layout as a stream of canonical records.

Containers: CSV, TSV (stdlib :mod:`csv`), JSON (a top-level array, or objects one after
the other), JSONL. Schemas: ChatML, prompt/completion, Alpaca, ShareGPT, DPO pairs, the
OpenAI preference format, and plain columns (CSV/TSV, or flat JSON objects) mapped to
one user and one assistant turn.

:func:`detect_format` looks at the extension and the first records;
:func:`read_examples` streams :class:`Example` items, one per input record, never holding
the file in memory. Bad input raises :class:`~ftclient.errors.DataError` (exit 1) or
:class:`~ftclient.errors.UsageError` (exit 2) with the line number and a hint.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from ..errors import DataError, UsageError
from ..fileio import MAX_LINE_BYTES, check_input_file, iter_lines, open_text, sniff_encoding
from . import convert
from .convert import DPO, SFT, Unusable

# Column names guessed when --input-col / --output-col are not given, best first.
INPUT_NAMES = (
    "text", "prompt", "input", "question", "query", "utterance", "sentence", "instruction",
    "message", "content", "request", "ticket", "source",
)
OUTPUT_NAMES = (
    "label", "category", "output", "completion", "answer", "intent", "response", "target",
    "class", "reply", "label_text", "intent_label",
)
SAMPLE_RECORDS = 50  # records looked at to detect the schema

ProgressFn = Callable[[int], None]  # called with the number of characters read so far


@dataclass(frozen=True)
class DataFormat:
    """What :func:`detect_format` found: container, schema and, for tabular data, columns."""

    container: str  # "csv" | "tsv" | "json" | "jsonl"
    schema: str  # a key of convert.SCHEMAS, or "columns" / "columns_dpo"
    kind: str  # "sft" | "dpo"
    columns: tuple[str, ...] = ()
    input_col: str | None = None
    output_col: str | None = None

    def describe(self) -> str:
        cont = {"csv": "CSV", "tsv": "TSV", "json": "JSON", "jsonl": "JSONL"}[self.container]
        if self.schema == "columns":
            return f"{cont}, columns {self.input_col!r} -> {self.output_col!r} (SFT)"
        if self.schema == "columns_dpo":
            return f"{cont}, preference columns {self.input_col!r}/'chosen'/'rejected' (DPO)"
        return f"{cont}, {convert.SCHEMAS[self.schema][2]} ({self.kind.upper()})"

    def to_dict(self) -> dict:
        return {
            "container": self.container,
            "schema": self.schema,
            "kind": self.kind,
            "description": self.describe(),
            "columns": list(self.columns),
            "input_col": self.input_col,
            "output_col": self.output_col,
        }


@dataclass
class Example:
    """One input record: its canonical form, or why it is unusable."""

    line: int  # 1-based line where the record starts
    record: dict | None
    reason: str | None = None  # a key of convert.REASONS when record is None
    detail: str = field(default="", repr=False)


# --- containers ---------------------------------------------------------------------


class _NonFinite(Exception):
    """A JSON number that is not a finite float (``1e999``), or NaN / Infinity."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise _NonFinite(s)
    return v


def _no_constant(s: str) -> Any:
    raise _NonFinite(s)


# Python's json takes 1e999 as inf and NaN / Infinity as numbers; training data must not.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
# A \uD800-\uDFFF escape: half of a UTF-16 pair, not text on its own.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _non_finite_error(p: Path, line: int, e: _NonFinite) -> DataError:
    what = (f"{e.text} is not a number JSON allows" if e.text in ("NaN", "Infinity", "-Infinity")
            else f"the number {e.text[:40]} is too large (not a finite number)")
    return DataError(f"{p}:{line}: {what}",
                     hint="Fix the value, or write it as text in quotes if it is meant as text.")


def _check_unicode(p: Path, line: int, raw: str, obj: Any) -> None:
    """Refuse a record with a lone surrogate escape (\\ud800): it cannot be written as UTF-8."""
    m = _SURROGATE_ESCAPE.search(raw)
    if m is None:
        return
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(
            f"{p}:{line}: a JSON string holds a lone surrogate escape ({m.group()}), which is not a character",
            hint="Fix or remove the escape; a character beyond U+FFFF is written as a pair such as \\ud83d\\ude00.",
        ) from None


def _first_char(p: Path) -> str:
    """First non-whitespace character of the text (BOM skipped), or ''."""
    with open_text(p) as f:
        try:
            head = f.read(65536)
        except UnicodeDecodeError as e:
            raise _decode_error(p, 1, e) from None
    s = head.lstrip()
    return s[:1]


def _container(p: Path) -> str:
    ext = p.suffix.lower()
    if ext in (".csv",):
        return "csv"
    if ext in (".tsv", ".tab"):
        return "tsv"
    first = _first_char(p)
    if ext in (".jsonl", ".ndjson", ".jsonlines"):
        return "jsonl"
    if ext == ".json" or first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    if not first:
        raise DataError(f"{p}: the file has no data (only whitespace)", hint="Give a file with at least one example.")
    with open_text(p, newline="") as f:
        try:
            header = f.readline(MAX_LINE_BYTES)
        except UnicodeDecodeError as e:
            raise _decode_error(p, 1, e) from None
    return "tsv" if header.count("\t") > header.count(",") else "csv"


def _decode_error(p: Path, line: int, e: UnicodeDecodeError) -> DataError:
    """The error for undecodable text, naming the first bad line (found again from the bytes)."""
    if e.encoding.replace("_", "-").lower() in ("utf-8", "utf8", "utf-8-sig"):
        with open(p, "rb") as raw:
            for n, b in enumerate(iter(lambda: raw.readline(MAX_LINE_BYTES), b""), 1):
                try:
                    b.decode("utf-8")
                except UnicodeDecodeError:
                    line = n
                    break
    return DataError(f"{p}:{line}: not valid UTF-8 text ({e.reason})" if "8" in e.encoding
                     else f"{p}:{line}: not valid {e.encoding} text ({e.reason})", hint="Save the file as UTF-8.")


def _iter_jsonl(p: Path, progress: ProgressFn | None) -> Iterator[tuple[int, Any]]:
    done = 0
    for lineno, text in iter_lines(p):
        done += len(text)
        if progress and lineno % 512 == 0:
            progress(done)
        s = text.strip()
        if not s:
            continue
        try:
            obj = _DECODER.decode(s)
        except _NonFinite as e:
            raise _non_finite_error(p, lineno, e) from None
        except json.JSONDecodeError as e:
            raise DataError(
                f"{p}:{lineno}: invalid JSON ({e.msg} at column {e.colno})",
                hint="Each line of a JSONL file must be one complete JSON object.",
            ) from None
        except ValueError as e:  # e.g. an integer over Python's digit limit
            raise DataError(f"{p}:{lineno}: invalid JSON ({e})") from None
        except RecursionError:
            raise DataError(f"{p}:{lineno}: JSON nested too deeply") from None
        _check_unicode(p, lineno, s, obj)
        yield lineno, obj
    if progress:
        progress(done)


_WS = " \t\r\n"


def _iter_json(p: Path, progress: ProgressFn | None) -> Iterator[tuple[int, Any]]:
    """Stream the elements of a top-level JSON array, or of objects one after the other.

    Memory is bounded by the largest element (at most MAX_LINE_BYTES characters).
    """
    dec = _DECODER
    f: IO[str] = open_text(p)
    buf, pos, line, eof, done = "", 0, 1, False, 0
    chunk = 1 << 16

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        try:
            s = f.read(chunk)
        except UnicodeDecodeError as e:
            raise _decode_error(p, line + buf.count("\n", pos), e) from None
        if not s:
            eof = True
            return False
        if pos:
            buf = buf[pos:]
            pos = 0
        buf += s
        return True

    def skip_ws() -> bool:
        """Skip whitespace; False at the end of the file."""
        nonlocal pos, line
        while True:
            start = pos
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            line += buf.count("\n", start, pos)
            if pos < len(buf):
                return True
            if not more():
                return False

    with f:
        if not skip_ws():
            raise DataError(f"{p}: the file has no data (only whitespace)", hint="Give a file with at least one example.")
        array = buf[pos] == "["
        if array:
            pos += 1
        elif buf[pos] != "{":
            raise DataError(
                f"{p}:{line}: expected a JSON array '[' or an object '{{', found {buf[pos]!r}",
                hint="A .json file must hold an array of records (or JSON objects one per line).",
            )
        first = True
        while True:
            if not skip_ws():
                if array:
                    raise DataError(f"{p}:{line}: the JSON array is not closed (missing ']')", hint="Is the file truncated?")
                break
            if array:
                if buf[pos] == "]":
                    pos += 1
                    if skip_ws():
                        raise DataError(f"{p}:{line}: unexpected data after the closing ']'")
                    break
                if not first:
                    if buf[pos] != ",":
                        raise DataError(f"{p}:{line}: invalid JSON (expected ',' or ']' between records)")
                    pos += 1
                    if not skip_ws():
                        raise DataError(f"{p}:{line}: the JSON array is not closed (missing ']')", hint="Is the file truncated?")
            first = False
            while True:
                try:
                    obj, end = dec.raw_decode(buf, pos)
                except json.JSONDecodeError as e:
                    if len(buf) - pos > MAX_LINE_BYTES:
                        raise DataError(f"{p}:{line}: a record longer than {MAX_LINE_BYTES // (1 << 20)} MiB or invalid JSON") from None
                    if more():
                        chunk = min(chunk * 2, 1 << 22)
                        continue
                    raise DataError(
                        f"{p}:{line + buf.count(chr(10), pos, e.pos)}: invalid JSON ({e.msg})",
                        hint="Check the file with a JSON validator; is it truncated?",
                    ) from None
                except _NonFinite as e:
                    # a long number cut at the end of the buffer may read as one: read on first
                    if len(buf) - pos <= MAX_LINE_BYTES and more():
                        chunk = min(chunk * 2, 1 << 22)
                        continue
                    raise _non_finite_error(p, line, e) from None
                except ValueError as e:  # e.g. an integer over Python's digit limit
                    raise DataError(f"{p}:{line}: invalid JSON ({e})") from None
                except RecursionError:
                    raise DataError(f"{p}:{line}: JSON nested too deeply") from None
                if end == len(buf) and more():  # a number or literal may go on in the next chunk
                    continue
                break
            _check_unicode(p, line, buf[pos:end], obj)
            yield line, obj
            done += end - pos
            line += buf.count("\n", pos, end)
            pos = end
            if progress:
                progress(done)


class _Counting:
    """Iterates the lines of a text file, counting the characters read (for progress)."""

    def __init__(self, f: IO[str]):
        self.f = f
        self.chars = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        s = self.f.readline(MAX_LINE_BYTES + 1)
        if not s:
            raise StopIteration
        if len(s) > MAX_LINE_BYTES:
            raise DataError(f"a line longer than {MAX_LINE_BYTES // (1 << 20)} MiB", hint="Is this a binary file?")
        self.chars += len(s)
        return s


def _csv_rows(p: Path, delimiter: str, progress: ProgressFn | None = None) -> Iterator[tuple[int, list[str]]]:
    """(start line, cells) of each row of a CSV/TSV file, the header first."""
    import csv

    if csv.field_size_limit() < MAX_LINE_BYTES:
        csv.field_size_limit(MAX_LINE_BYTES)
    with open_text(p, newline="") as f:
        src = _Counting(f)
        reader = csv.reader(src, delimiter=delimiter)
        n = 0
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise DataError(f"{p}:{start}: not valid {delimiter == ',' and 'CSV' or 'TSV'} ({e})",
                                hint="Check the quoting near this line.") from None
            except UnicodeDecodeError as e:
                raise _decode_error(p, start, e) from None
            except DataError as e:
                raise DataError(f"{p}:{start}: {e.message}", e.hint) from None
            n += 1
            if progress and n % 512 == 0:
                progress(src.chars)
            yield start, row
        if progress:
            progress(src.chars)


def _records(p: Path, container: str, progress: ProgressFn | None = None) -> Iterator[tuple[int, Any]]:
    if container in ("csv", "tsv"):
        rows = _csv_rows(p, "," if container == "csv" else "\t", progress)
        header = _header(p, rows)
        for line, row in rows:
            if not any(c.strip() for c in row):
                continue  # a blank line is no record
            yield line, {h: (row[i] if i < len(row) else None) for i, h in enumerate(header)}
    elif container == "jsonl":
        yield from _iter_jsonl(p, progress)
    else:
        yield from _iter_json(p, progress)


def _header(p: Path, rows: Iterator[tuple[int, list[str]]]) -> list[str]:
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError(f"{p}: the file has no header row", hint="The first line must name the columns.") from None
    header = [h.strip() for h in header]
    if not any(header):
        raise DataError(f"{p}:1: the header row is empty", hint="The first line must name the columns.")
    return header


# --- detection ----------------------------------------------------------------------


def _pick(names: Iterable[str], wanted: tuple[str, ...], exclude: str | None = None) -> str | None:
    by_lower = {}
    for n in names:
        by_lower.setdefault(n.lower(), n)
    for w in wanted:
        if w in by_lower and by_lower[w] != exclude:
            return by_lower[w]
    return None


def _check_col(p: Path, col: str, names: tuple[str, ...], option: str) -> str:
    if col in names:
        return col
    low = {n.lower(): n for n in names}
    if col.lower() in low:
        return low[col.lower()]
    close = difflib.get_close_matches(col, names, n=1)
    hint = f"Did you mean {close[0]!r}?" if close else f"Pass {option} with one of the columns."
    raise UsageError(f"{p}: no column {col!r}; the columns are: {', '.join(names) or '(none)'}", hint=hint)


def _columns_format(p: Path, container: str, names: tuple[str, ...], input_col: str | None, output_col: str | None) -> DataFormat:
    if input_col:
        input_col = _check_col(p, input_col, names, "--input-col")
    if output_col:
        output_col = _check_col(p, output_col, names, "--output-col")
    lower = {n.lower() for n in names}
    if not output_col and {"chosen", "rejected"} <= lower:
        prompt = input_col or _pick(names, ("prompt", "question", "input", "instruction", "query", "text"))
        if prompt:
            return DataFormat(container, "columns_dpo", DPO, names, _pick(names, (prompt.lower(),)), None)
    input_col = input_col or _pick(names, INPUT_NAMES, exclude=output_col)
    output_col = output_col or _pick(names, OUTPUT_NAMES, exclude=input_col)
    if not input_col or not output_col:
        missing = " and ".join(
            o for o, c in (("--input-col", input_col), ("--output-col", output_col)) if not c
        )
        raise UsageError(
            f"{p}: cannot tell which column is the {'input' if not input_col else 'output'}; "
            f"the columns are: {', '.join(names) or '(none)'}",
            hint=f"Pass {missing}, e.g. --input-col {names[0] if names else 'text'}"
            + (f" --output-col {names[-1]}" if not output_col and names else ""),
        )
    if input_col == output_col:
        raise UsageError(f"--input-col and --output-col are the same column {input_col!r}")
    return DataFormat(container, "columns", SFT, names, input_col, output_col)


def detect_format(path: str | os.PathLike, *, input_col: str | None = None, output_col: str | None = None) -> DataFormat:
    """Detect container and schema from the extension and the first records.

    For tabular data (CSV/TSV, or flat JSON objects) the input and output columns are
    ``input_col`` / ``output_col`` when given, else guessed from common names.
    """
    p = check_input_file(path)
    sniff_encoding(p)  # refuses binary files early
    container = _container(p)
    if container in ("csv", "tsv"):
        rows = _csv_rows(p, "," if container == "csv" else "\t")
        header = tuple(_header(p, rows))
        return _columns_format(p, container, header, input_col, output_col)
    sample: list[Any] = []
    for _, r in _records(p, container):
        sample.append(r)
        if len(sample) >= SAMPLE_RECORDS:
            break
    if not sample:
        raise DataError(f"{p}: no records found", hint="Give a file with at least one example.")
    objects = [r for r in sample if isinstance(r, dict)]
    if not objects:
        raise DataError(
            f"{p}: the records are not JSON objects (found {type(sample[0]).__name__})",
            hint="Each record must be an object such as {\"messages\": [...]} or {\"prompt\": ..., \"completion\": ...}.",
        )
    keys: dict[str, None] = {}
    for r in objects:
        keys.update(dict.fromkeys(r))
    names = tuple(keys)
    if input_col or output_col:
        return _columns_format(p, container, names, input_col, output_col)
    counts = Counter(s for s in map(convert.schema_of, objects) if s)
    if counts:
        schema = counts.most_common(1)[0][0]
        return DataFormat(container, schema, convert.SCHEMAS[schema][0], names)
    try:
        return _columns_format(p, container, names, None, None)
    except UsageError:
        raise DataError(
            f"{p}: unknown record format (keys: {', '.join(names[:12])})",
            hint="Supported: ChatML {messages}, prompt/completion, Alpaca instruction/input/output, "
            "ShareGPT conversations, DPO prompt/chosen/rejected, OpenAI preference; "
            "or name the fields with --input-col and --output-col.",
        ) from None


def _converter(fmt: DataFormat) -> Callable[[dict, str | None], dict]:
    if fmt.schema == "columns":
        assert fmt.input_col and fmt.output_col
        return convert.columns_converter(fmt.input_col, fmt.output_col)
    if fmt.schema == "columns_dpo":
        assert fmt.input_col
        return convert.columns_dpo_converter(fmt.input_col)
    return convert.SCHEMAS[fmt.schema][1]


def read_examples(
    path: str | os.PathLike,
    *,
    fmt: DataFormat | None = None,
    input_col: str | None = None,
    output_col: str | None = None,
    system: str | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[Example]:
    """Stream the records of ``path`` as canonical ChatML :class:`Example` items.

    ``fmt`` defaults to :func:`detect_format`. ``system`` is added as the first message
    of records without one. Unusable records are yielded with ``record=None`` and a
    ``reason``; unreadable files raise DataError/UsageError.
    """
    p = Path(path)
    if fmt is None:
        fmt = detect_format(p, input_col=input_col, output_col=output_col)
    conv = _converter(fmt)
    system = system.strip() if system and system.strip() else None
    for line, r in _records(p, fmt.container, progress):
        if not isinstance(r, dict):
            yield Example(line, None, "not_an_object")
            continue
        try:
            yield Example(line, conv(r, system))
        except Unusable as u:
            yield Example(line, None, u.reason, u.detail)
