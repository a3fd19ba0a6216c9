"""Streaming validation of a JSONL file: one pass, each line parsed once.

Large UTF-8 files are split at line boundaries into one chunk per CPU core; the chunks
are checked in forked worker processes (each streams its own byte range, so memory
stays bounded whatever the file size) and their findings merged with line numbers made
absolute. Token counts, where they matter, are made in batches with
:mod:`ftclient.tokens` in a single sequential pass.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Callable

from ..backends import backends_offering, get_backend, offers
from ..errors import DataError, UsageError
from ..fileio import MAX_LINE_BYTES, check_input_file, iter_lines, sniff_encoding
from .common import (
    MAX_STORED_PROBLEMS,
    DataChecker,
    Findings,
    Problem,
    TokenStats,
    ValidationResult,
    catalogue_limit,
    type_name,
)
from .parquet import check_parquet, is_parquet

METHODS = ("sft", "dpo")

# Files smaller than this are checked in-process (forking costs more than it saves).
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
# Token counting batches: this many examples or this many bytes of JSON, whichever first.
TOKEN_BATCH = 2000
TOKEN_BATCH_BYTES = 8 * 1024 * 1024
# Bytes read at a time by the scanner.
BLOCK = 1024 * 1024
# Chunks per worker process, and their least size.
CHUNKS_PER_WORKER = 4
MIN_CHUNK_BYTES = 4 * 1024 * 1024
# Lines to read ahead for the file's format before splitting it between workers.
SNIFF_LINES = 1000

# Whole-file errors after which counting the examples means nothing.
FILE_FATAL = frozenset({"empty_file", "binary_file", "parquet_not_supported", "invalid_parquet"})

# Formats whose examples ftclient.tokens can count (chat SFT and preference).
COUNTABLE = frozenset({"conversation", "preference"})

Progress = Callable[[int, int], None]


def checkable_backends() -> list[str]:
    """The installed backends that check training data (``data_checker``): nothing is built."""
    return backends_offering("data_checker")


def check_provider(provider: str) -> str:
    """``provider`` in lower case when it is an installed backend that checks data, else a
    UsageError naming the closest one. Only that backend's class is read (all of them only
    for the error), so a check does not import every backend."""
    prov = (provider or "").strip().lower()
    if prov and offers(prov, "data_checker"):
        return prov
    known = checkable_backends()
    close = difflib.get_close_matches(prov, known, n=1)
    raise UsageError(f"unknown provider {provider!r}" + (f"; did you mean '{close[0]}'?" if close else ""),
                     hint=f"Use one of: {', '.join(known)}.")


def make_checker(provider: str, model: str | None, method: str | None) -> DataChecker:
    """The data checker of backend ``provider`` (asked of the registry)."""
    return get_backend(provider).data_checker(model, method)


def validate_file(
    path: str | os.PathLike,
    provider: str,
    *,
    model: str | None = None,
    method: str | None = None,
    max_seq_len: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    strict: bool = False,
) -> ValidationResult:
    """Check a JSONL training file (for Together also a pre-tokenized Parquet file)
    against ``provider``'s rules.

    ``provider``: ``openai``, ``together`` or ``local``. ``model``: the base model
    (OpenAI default ``gpt-4.1-mini``; for ``local`` a model folder or a Hugging Face id
    in the local cache whose chat template renders the examples). ``method``: ``sft``
    or ``dpo`` (default: detected from the first example). ``max_seq_len``: the token
    limit per example (``local``: default 2048; hosted: default the model's limit from
    the price catalogue). ``progress(done_bytes, total_bytes)`` is called now and then.
    ``workers``: processes for large files (default: the CPU cores; 1 = in-process).
    ``strict``: every warning counts as an error (``ok`` is then false on a warning).

    Bad data never raises: it is reported in the result. Raises UsageError/ConfigError
    (exit 2) for an unknown provider or method, a missing file, an unusable model, a
    Parquet file without pyarrow installed.
    """
    prov = check_provider(provider)
    if method is not None:
        method = method.strip().lower()
        if method not in METHODS:
            raise UsageError(f"unknown method {method!r}", hint="Use sft or dpo.")
    if max_seq_len is not None and (not isinstance(max_seq_len, int) or max_seq_len < 1):
        raise UsageError(f"--max-seq-len must be a positive integer, got {max_seq_len!r}")
    p = Path(path)
    try:
        check_input_file(p)  # missing, a directory, unreadable: usage errors
    except DataError:
        pass  # an empty file is a finding of the validation itself (empty_file)

    checker = make_checker(prov, model, method)
    size = p.stat().st_size
    res = ValidationResult(path=str(p), provider=prov, model=getattr(checker, "model", model), method=method)
    res.file_bytes = size
    res.strict = bool(strict)
    F = res.findings
    if not checker.takes_parquet:
        if is_parquet(p):
            name = checker.display or prov
            F.error(
                0,
                "parquet_not_supported",
                f"{name} takes JSONL training files, not Parquet (pre-tokenized Parquet is a Together format); "
                "give chat records as JSONL (ftc data prepare writes them)",
            )
            return _finish(res, checker, strict, progress, size)
    checker.file_rules(p, size, F)
    if size == 0:
        F.error(0, "empty_file", "the file is empty")
        return _finish(res, checker, strict, progress, size)
    if checker.takes_parquet and p.suffix == ".parquet":
        return _validate_parquet(p, res, checker, model, max_seq_len, strict, progress)
    try:
        enc = sniff_encoding(p)
    except DataError as e:
        F.error(0, "binary_file", e.message)
        return _finish(res, checker, strict, progress, size)
    if enc not in ("utf-8", "utf-8-sig") and not _decodes_as(p, enc, size):
        # Bytes that start like a UTF-16/32 byte-order mark (FF FE ...) but do not decode
        # as that: the file is neither; the UTF-8 scan reports the lines that are not UTF-8.
        res.notes.append(
            f"the file starts like a {enc.upper()} byte-order mark but is not {enc.upper()} text; it was read as UTF-8"
        )
        with open(p, "rb") as f:
            if b"\x00" in f.read(65536):
                F.error(0, "binary_file", f"{p}: looks like a binary file (NUL bytes), not text")
                return _finish(res, checker, strict, progress, size)
        enc = "utf-8"
    res.encoding = enc
    if enc == "utf-8-sig":
        msg = "the file starts with a UTF-8 byte-order mark (BOM)"
        if checker.bom_is_error:
            F.error(1, "bom", msg + f"; {checker.display or prov}'s JSON parser refuses it: save as UTF-8 without BOM")
        else:
            F.warning(1, "bom", msg + "; save as UTF-8 without BOM")
    elif enc != "utf-8":
        msg = f"the file is {enc.upper()}, not UTF-8"
        if not checker.non_utf8_is_error:
            F.warning(1, "not_utf8", msg)
        else:
            F.error(1, "not_utf8", msg + "; save it as UTF-8")

    plan = _token_plan(checker, max_seq_len, F, res)

    if enc not in ("utf-8", "utf-8-sig"):
        out = _scan_text(p, checker, F, plan)
    else:
        n = workers if workers is not None else _cores()
        if plan is None and n > 1 and size >= PARALLEL_MIN_BYTES:
            out = _scan_parallel(p, size, checker, F, n, progress)
        else:
            out = _scan(str(p), 0, size, checker, None, F, plan, progress, size)
    if plan is not None:
        plan.flush()
        plan.summarise(res.notes)
    res.lines, res.blank_lines, res.examples, res.formats, first_fmt, _, format_lines = out
    res.format = _blame_mixed(F, res.formats, format_lines, first_fmt)
    return _finish(res, checker, strict, progress, size)


def _finish(res: ValidationResult, checker, strict: bool, progress, size: int) -> ValidationResult:
    """The whole-file rules (minimum examples), ``strict``, sorting; the result."""
    F = res.findings
    if res.examples < checker.min_examples and FILE_FATAL.isdisjoint(F.error_counts):
        F.error(
            0,
            "too_few_examples",
            f"{res.examples} example(s); {res.provider} needs at least {checker.min_examples}",
        )
    most = checker.max_examples
    if most is not None and res.examples > most and FILE_FATAL.isdisjoint(F.error_counts):
        F.error(0, "too_many_examples", f"{res.examples:,} examples; {res.provider} takes at most {most:,} per file")
    if strict:
        F.promote_warnings()
    F.sort()
    if progress:
        progress(size, size)
    return res


def _decodes_as(p: Path, enc: str, size: int) -> bool:
    """Whether the head of ``p`` (all of it when small) decodes as ``enc``."""
    import codecs

    with open(p, "rb") as f:
        head = f.read(65536)
    try:
        codecs.getincrementaldecoder(enc)().decode(head, final=len(head) >= size)
    except UnicodeDecodeError:
        return False
    return True


def _validate_parquet(p: Path, res: ValidationResult, checker, model, max_seq_len, strict, progress) -> ValidationResult:
    """A pre-tokenized Parquet file, for a backend that takes one (see :mod:`.parquet`)."""
    F = res.findings
    res.encoding = "parquet"
    unchecked = ""
    if max_seq_len is not None:
        limit, source = max_seq_len, "--max-seq-len"
    elif model:
        limit, source = catalogue_limit(f"{checker.provider}:{model}")
        if limit is None:
            unchecked = f"no token limit checked: {source}"
            source = None
    else:
        limit, source = None, None
        unchecked = "no token limit checked: give --model or --max-seq-len to check the lengths of the rows"

    def over(row: int, n: int) -> None:
        F.error(row, "too_many_tokens", f"{n:,} tokens, over the limit of {limit:,} ({source})")

    rows, stats = check_parquet(p, F, limit=limit, limit_source=source, on_over_limit=over, progress=progress)
    res.examples = res.lines = rows
    res.tokens = stats
    if stats is not None and limit is None:
        res.notes.append(unchecked)
    if rows:
        res.formats = {"tokenized": rows}
        res.format = "tokenized"
        if checker.method == "dpo":
            F.error(0, "wrong_format", "pre-tokenized Parquet data is for SFT; DPO needs preference records in JSONL")
    return _finish(res, checker, strict, progress, res.file_bytes)


def _blame_mixed(F: Findings, formats: dict[str, int], format_lines: dict[str, list[int]], first: str | None) -> str | None:
    """Report ``mixed_formats`` on the lines of every format but the file's main one
    (the most frequent; on a tie, the first example's). Returns the main format."""
    if len(formats) < 2:
        return first if first is not None else next(iter(formats), None)
    main = max(formats, key=lambda f: (formats[f], f == first))
    total = sum(formats.values())
    for fmt, n in formats.items():
        if fmt == main:
            continue
        msg = f"{fmt} example, but the file is mostly {main} ({formats[main]:,} of {total:,} examples); use one format per file"
        stored = format_lines.get(fmt, [])
        for ln in stored:
            F.error(ln, "mixed_formats", msg)
        F.count_errors("mixed_formats", n - len(stored))
    return main


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------- tokens


class TokenPlan:
    """Counts tokens of the examples that passed the structural checks, in batches.

    An example over the limit is an error where the provider refuses it (exact count),
    a warning where the count is approximate, and a warning naming the tokens dropped
    where the provider truncates it (``truncates``: the provider's name; OpenAI).
    """

    def __init__(
        self,
        counter: Any,
        limit: int | None,
        source: str | None,
        F: Findings,
        stats: TokenStats,
        template: bool,
        truncates: str | None = None,
    ):
        self.counter = counter
        self.limit = limit
        self.source = source
        self.F = F
        self.stats = stats
        self.template = template  # rendering errors are the chat template's (local)
        self.truncates = truncates
        self.buf: list[tuple[int, Any]] = []
        self.nbytes = 0
        self.offset = 0  # added to line numbers (not used in the sequential scan)

    def add(self, ln: int, rec: Any, nbytes: int) -> None:
        self.buf.append((ln, rec))
        self.nbytes += nbytes
        if len(self.buf) >= TOKEN_BATCH or self.nbytes >= TOKEN_BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        buf, self.buf, self.nbytes = self.buf, [], 0
        if not buf:
            return
        try:
            counts: list[int | None] = list(self.counter.count_records([r for _, r in buf]))
        except Exception:  # noqa: BLE001 - find the examples at fault one by one
            counts = []
            for ln, r in buf:
                try:
                    counts.append(self.counter.count_record(r))
                except Exception as e:  # noqa: BLE001
                    msg = getattr(e, "message", None) or str(e) or type(e).__name__
                    if self.template:
                        self.F.error(ln, "template_error", f"the chat template does not render this example: {msg}")
                    else:
                        self.F.error(ln, "token_count_failed", f"cannot count tokens: {msg}")
                    counts.append(None)
        st, limit, F = self.stats, self.limit, self.F
        exact = st.exact
        for (ln, _), n in zip(buf, counts):
            if n is None:
                continue
            st.add(n)
            if limit is not None and n > limit:
                st.over_limit += 1
                st.over_limit_tokens += n - limit
                if self.truncates:
                    about = "" if exact else "about "
                    F.warning(
                        ln,
                        "too_many_tokens",
                        f"{about}{n:,} tokens, over the limit of {limit:,} ({self.source}); {self.truncates} truncates "
                        f"the example: its last {about}{n - limit:,} tokens will be dropped",
                    )
                elif exact:
                    F.error(ln, "too_many_tokens", f"{n:,} tokens, over the limit of {limit:,} ({self.source})")
                else:
                    F.warning(ln, "too_many_tokens", f"about {n:,} tokens (approximate count), over the limit of {limit:,} ({self.source})")

    def summarise(self, notes: list[str]) -> None:
        """A note on what truncation drops, in all (where the provider truncates)."""
        st = self.stats
        if self.truncates and st.over_limit:
            note = (
                f"{st.over_limit:,} example(s) over the {self.limit:,}-token limit: {self.truncates} truncates them, "
                f"dropping {st.over_limit_tokens:,} tokens in all"
            )
            if self.source and "catalogue" in self.source:
                note += f"; training is billed on at most {self.limit:,} tokens per example, as ftc's cost estimate assumes"
            notes.append(note)


def _token_plan(checker: DataChecker, max_seq_len: int | None, F: Findings, res: ValidationResult):
    setup = checker.token_setup(max_seq_len, res.notes)
    if setup is None:
        return None
    counter = setup.counter
    stats = TokenStats(basis=counter.basis, exact=bool(counter.exact), limit=setup.limit, limit_source=setup.source)
    res.tokens = stats
    if not counter.exact and not setup.template:
        res.notes.append("token counts are approximate: " + counter.basis)
    return TokenPlan(counter, setup.limit, setup.source, F, stats, template=setup.template,
                     truncates=setup.truncates)


# ----------------------------------------------------------------------- scanning


def _json_error(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"not valid JSON: {e.msg} (column {e.colno})"
    if isinstance(e, RecursionError):
        return "not valid JSON: nested too deeply"
    return f"not valid JSON: {e}"


_UNPARSED = object()


def _fast_loads() -> Callable[[bytes], Any]:
    """orjson.loads where installed (raises a ValueError subclass on anything it refuses)."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency; stay correct without it
        def refuse(b: bytes) -> Any:
            raise ValueError
        return refuse
    return orjson.loads


def _record(rec: Any, ln: int, nbytes: int, check, allowed, state: list, formats: dict, F: Findings, plan) -> None:
    """Check one parsed line (shared by the byte and the text scanners).

    ``state``: ``[first format, its line, {format: its first lines}]``; the lines of each
    format are kept (up to MAX_STORED_PROBLEMS) so that, once the whole file is read,
    ``mixed_formats`` blames the formats in the minority (see _blame_mixed).
    """
    if type(rec) is not dict:
        F.error(ln, "not_an_object", f"each line must be a JSON object, this one is {_jtype(rec)}")
        return
    n0 = F.n_err
    fmt = check(rec, ln, F)
    if fmt is None:
        return
    k = formats[fmt] = formats.get(fmt, 0) + 1
    if k <= MAX_STORED_PROBLEMS:
        lines = state[2].get(fmt)
        if lines is None:
            lines = state[2][fmt] = []
            if state[0] is None:
                state[0], state[1] = fmt, ln
        lines.append(ln)
    if allowed is not None and fmt not in allowed:
        F.error(ln, "wrong_format", f"{fmt} example, but the method asks for {' or '.join(sorted(allowed))}")
    if plan is not None and F.n_err == n0 and fmt in COUNTABLE:
        plan.add(ln, rec, nbytes)


def _jtype(v: Any) -> str:
    return {"array": "an array", "string": "a string", "number": "a number", "boolean": "a boolean", "null": "null"}.get(type_name(v), type_name(v))


def _scan(
    path: str,
    start: int,
    end: int,
    checker,
    file_format: str | None,
    F: Findings,
    plan,
    progress,
    total: int,
    first_line: int = 0,
    format_line: int = 0,
):
    """Check the lines of bytes ``[start, end)`` (``start`` at a line start).

    Reads blocks of BLOCK bytes and splits them into lines (a line longer than the
    checker's ``max_line_bytes``, by default MAX_LINE_BYTES, is reported and skipped,
    never held whole). Each line is decoded
    and parsed once: by orjson, or where it refuses a line, by the C scanner of the json
    module, which names the error. Line numbers are counted
    from ``first_line`` + 1. Returns ``(lines, blank_lines, examples, formats,
    first_format, first_format_line, {format: its first lines})``.
    """
    check = checker.check
    method = checker.method
    allowed = checker.formats_for_method.get(method) if method else None
    scan_once = json.JSONDecoder().scan_once
    fast_loads = _fast_loads()
    formats: dict[str, int] = {}
    state: list = [file_format, format_line, {}]
    ln = first_line
    blank = examples = 0
    limit = checker.max_line_bytes or MAX_LINE_BYTES
    step = 4 * 1024 * 1024
    next_report = start + step
    carry = b""
    skipping = False  # inside an overlong line, dropping bytes up to its newline
    remaining = end - start
    first = start == 0  # only the file's first block can start with a BOM
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        while True:
            data = f.read(min(BLOCK, remaining)) if remaining > 0 else b""
            remaining -= len(data)
            if first:
                first = False
                if data.startswith(b"\xef\xbb\xbf"):
                    data = data[3:]  # the BOM (reported by the caller)
            if progress is not None and end - remaining >= next_report:
                progress(end - remaining - start, total)
                next_report = end - remaining + step
            if not data:
                if not carry:
                    break
                lines = [carry]  # the last line, without a newline
                carry = b""
            else:
                if skipping:
                    i = data.find(b"\n")
                    if i < 0:
                        continue
                    data = data[i + 1 :]
                    skipping = False
                lines = (carry + data if carry else data).split(b"\n")
                carry = lines.pop()
                if len(carry) > limit:
                    lines.append(None)  # marks an overlong line
                    carry = b""
                    skipping = True
            for b in lines:
                ln += 1
                if b is None or len(b) > limit:
                    examples += 1
                    F.error(ln, "line_too_long", f"line longer than {limit // (1024 * 1024):,} MiB; is this a binary or minified file?")
                    continue
                try:
                    # Fast path: orjson parses strict JSON straight from the bytes and
                    # checks UTF-8 on the way. Anything it refuses takes the path below,
                    # which gives the exact error (or accepts what the stdlib accepts).
                    rec = fast_loads(b)
                except ValueError:
                    rec = _UNPARSED
                if rec is _UNPARSED:
                    try:
                        s = b.decode("utf-8")
                    except UnicodeDecodeError as e:
                        examples += 1
                        F.error(ln, "not_utf8", f"not valid UTF-8 ({e.reason} at byte {e.start} of the line)")
                        continue
                    if not s or s.isspace():
                        blank += 1
                        F.warning(ln, "blank_line", "blank line (skipped)")
                        continue
                    examples += 1
                    try:
                        rec, pos = scan_once(s, 0)
                        if pos != len(s) and not s[pos:].isspace():
                            raise ValueError
                    except (ValueError, StopIteration, RecursionError):
                        try:  # leading blanks, or an error: let json.loads say which
                            rec = json.loads(s)
                        except (ValueError, RecursionError) as e:
                            F.error(ln, "invalid_json", _json_error(e))
                            continue
                else:
                    examples += 1
                _record(rec, ln, len(b), check, allowed, state, formats, F, plan)
    return ln - first_line, blank, examples, formats, state[0], state[1], state[2]


def _scan_text(p: Path, checker, F: Findings, plan):
    """Sequential scan of a non-UTF-8 text file (UTF-16/32 with a BOM) via iter_lines."""
    method = checker.method
    allowed = checker.formats_for_method.get(method) if method else None
    formats: dict[str, int] = {}
    state: list = [None, 0, {}]
    ln = blank = examples = 0
    try:
        for ln, s in iter_lines(p):
            if ln == 1 and s[:1] == "\ufeff":
                s = s[1:]
            if not s.strip():
                blank += 1
                F.warning(ln, "blank_line", "blank line (skipped)")
                continue
            examples += 1
            try:
                rec = json.loads(s)
            except (ValueError, RecursionError) as e:
                F.error(ln, "invalid_json", _json_error(e))
                continue
            _record(rec, ln, len(s), checker.check, allowed, state, formats, F, plan)
    except DataError as e:  # undecodable or overlong line: iter_lines cannot go on
        ln += 1
        F.error(ln, "not_utf8" if "not valid" in e.message else "line_too_long", e.message + " (checking stopped here)")
    return ln, blank, examples, formats, state[0], state[1], state[2]


def _split_points(path: Path, size: int, n: int) -> list[int]:
    """``n + 1`` byte offsets, each (but the last) at the start of a line."""
    points = [0]
    with open(path, "rb") as f:
        for k in range(1, n):
            target = max(size * k // n, points[-1])
            f.seek(target)
            if target > 0:
                f.seek(target - 1)
                while True:  # move to just after the next newline
                    chunk = f.readline(1024 * 1024)
                    if not chunk or chunk.endswith(b"\n"):
                        break
            points.append(min(f.tell(), size))
    points.append(size)
    return points


def _sniff_format(path: Path, checker) -> tuple[str | None, int]:
    """The format of the first example whose format can be told, within SNIFF_LINES."""
    scratch = Findings(cap=0)
    for ln, b in _head_lines(path):
        if ln > SNIFF_LINES:
            break
        try:
            rec = json.loads(b.decode("utf-8").lstrip("\ufeff"))
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict):
            fmt = checker.check(rec, ln, scratch)
            if fmt is not None:
                return fmt, ln
    return None, 0


def _head_lines(path: Path):
    with open(path, "rb") as f:
        ln = 0
        while True:
            b = f.readline(MAX_LINE_BYTES + 1)
            ln += 1
            if not b or len(b) > MAX_LINE_BYTES:
                return
            if b.strip():
                yield ln, b


def _worker(args):
    path, start, end, checker, file_format, format_line = args
    F = Findings()
    out = _scan(path, start, end, checker, file_format, F, None, None, end - start, 0, format_line)
    return F, out


def _worker_indexed(item):
    i, args = item
    return i, _worker(args)


def _scan_parallel(p: Path, size: int, checker, F: Findings, n: int, progress):
    """Check ``p`` in ``n`` forked processes, on chunks handed out as they finish (so a
    core busy with something else slows the run less); merge in file order."""
    import multiprocessing as mp

    file_format, format_line = _sniff_format(p, checker)
    if file_format is None or "fork" not in mp.get_all_start_methods():
        return _scan(str(p), 0, size, checker, None, F, None, progress, size)
    k = max(n, min(n * CHUNKS_PER_WORKER, size // MIN_CHUNK_BYTES))
    points = _split_points(p, size, k)
    chunks = [(a, b) for a, b in zip(points, points[1:]) if b > a]
    work = [(i, (str(p), a, b, checker, file_format, format_line)) for i, (a, b) in enumerate(chunks)]
    parts: list = [None] * len(chunks)
    done = 0
    with mp.get_context("fork").Pool(min(n, len(chunks))) as pool:
        for i, part in pool.imap_unordered(_worker_indexed, work):
            parts[i] = part
            done += chunks[i][1] - chunks[i][0]
            if progress is not None:
                progress(done, size)
    lines = blank = examples = 0
    formats: dict[str, int] = {}
    format_lines: dict[str, list[int]] = {}
    for Fi, out in parts:
        _shift(Fi, lines)
        F.merge(Fi)
        for key, v in out[3].items():
            formats[key] = formats.get(key, 0) + v
        for key, lns in out[6].items():
            kept = format_lines.setdefault(key, [])
            kept.extend(ln + lines for ln in lns[: max(0, MAX_STORED_PROBLEMS - len(kept))])
        lines += out[0]
        blank += out[1]
        examples += out[2]
    return lines, blank, examples, formats, file_format, format_line, format_lines


def _shift(F: Findings, offset: int) -> None:
    if not offset:
        return
    F.errors = [Problem(p.line + offset, p.code, p.message) for p in F.errors]
    F.warnings = [Problem(p.line + offset, p.code, p.message) for p in F.warnings]
    F.first_lines = {k: [ln + offset for ln in v] for k, v in F.first_lines.items()}
