"""What every provider's validation shares: problems, the result, the error cap.

A :class:`Problem` is one finding on one line (``line`` is 1-based; ``0`` means the
whole file, e.g. ``too_few_examples``). Its ``code`` is a stable category name that
scripts may rely on; ``docs/validation.md`` lists every code per provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import FtcError

# Stored problems are capped so that memory stays bounded on a file where every line
# is wrong; the counts per code are always complete.
MAX_STORED_PROBLEMS = 1000
# Line numbers kept per code for the summary, whatever the cap.
LINES_PER_CODE = 5


class Problem(NamedTuple):
    """One finding: 1-based line (0 = the whole file), stable code, readable message."""

    line: int
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message}


def writable(message: str) -> str:
    """``message`` as UTF-8 can hold it: a lone surrogate quoted from the data (a JSON
    ``\\ud800`` escape, in a key or a value) is shown as the text ``\\ud800``."""
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        return message.encode("utf-8", "backslashreplace").decode("utf-8")
    return message


class Findings:
    """Errors and warnings of a run (or of one chunk of a file), capped."""

    __slots__ = ("errors", "warnings", "error_counts", "warning_counts", "first_lines", "cap", "n_err")

    def __init__(self, cap: int = MAX_STORED_PROBLEMS):
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.error_counts: dict[str, int] = {}
        self.warning_counts: dict[str, int] = {}
        self.first_lines: dict[str, list[int]] = {}
        self.cap = cap
        self.n_err = 0  # errors so far, all codes: a cheap "did this record add one?"

    def error(self, line: int, code: str, message: str) -> None:
        self.n_err += 1
        self.error_counts[code] = self.error_counts.get(code, 0) + 1
        self._lines(code, line)
        if len(self.errors) < self.cap:
            self.errors.append(Problem(line, code, writable(message)))

    def warning(self, line: int, code: str, message: str) -> None:
        self.warning_counts[code] = self.warning_counts.get(code, 0) + 1
        self._lines(code, line)
        if len(self.warnings) < self.cap:
            self.warnings.append(Problem(line, code, writable(message)))

    def _lines(self, code: str, line: int) -> None:
        lines = self.first_lines.setdefault(code, [])
        if len(lines) < LINES_PER_CODE and line not in lines:
            lines.append(line)

    def count_errors(self, code: str, n: int) -> None:
        """Count ``n`` more errors of ``code`` whose lines are not stored (past a cap)."""
        if n > 0:
            self.n_err += n
            self.error_counts[code] = self.error_counts.get(code, 0) + n

    def promote_warnings(self) -> None:
        """Make every warning an error (``strict``)."""
        for p in self.warnings:
            if len(self.errors) < self.cap:
                self.errors.append(p)
        for code, n in self.warning_counts.items():
            self.error_counts[code] = self.error_counts.get(code, 0) + n
            self.n_err += n
        self.warnings = []
        self.warning_counts = {}

    def merge(self, other: "Findings") -> None:
        """Add ``other`` (a later part of the file) to these findings, keeping the cap."""
        self.n_err += other.n_err
        for code, n in other.error_counts.items():
            self.error_counts[code] = self.error_counts.get(code, 0) + n
        for code, n in other.warning_counts.items():
            self.warning_counts[code] = self.warning_counts.get(code, 0) + n
        for code, lines in other.first_lines.items():
            mine = self.first_lines.setdefault(code, [])
            for ln in lines:
                if len(mine) < LINES_PER_CODE and ln not in mine:
                    mine.append(ln)
        self.errors.extend(other.errors[: max(0, self.cap - len(self.errors))])
        self.warnings.extend(other.warnings[: max(0, self.cap - len(self.warnings))])

    def sort(self) -> None:
        self.errors.sort(key=lambda p: p.line)
        self.warnings.sort(key=lambda p: p.line)
        for lines in self.first_lines.values():
            lines.sort()

    @property
    def n_errors(self) -> int:
        return sum(self.error_counts.values())

    @property
    def n_warnings(self) -> int:
        return sum(self.warning_counts.values())


@dataclass
class TokenStats:
    """Token counts per example, summarised (the counts themselves are not kept)."""

    basis: str
    exact: bool
    limit: int | None = None
    limit_source: str | None = None
    counted: int = 0
    total: int = 0
    min: int | None = None
    max: int | None = None
    over_limit: int = 0
    over_limit_tokens: int = 0  # tokens past the limit, summed over the examples over it

    def add(self, n: int) -> None:
        self.counted += 1
        self.total += n
        if self.min is None or n < self.min:
            self.min = n
        if self.max is None or n > self.max:
            self.max = n

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "exact": self.exact,
            "limit": self.limit,
            "limit_source": self.limit_source,
            "counted": self.counted,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "mean": round(self.total / self.counted, 1) if self.counted else None,
            "over_limit": self.over_limit,
            "over_limit_tokens": self.over_limit_tokens,
        }


@dataclass
class ValidationResult:
    """The outcome of :func:`ftclient.validation.validate_file`.

    ``ok`` is true when no error was found (warnings do not count; with ``strict``
    every warning was made an error). ``errors`` and
    ``warnings`` hold at most ``MAX_STORED_PROBLEMS`` problems each, sorted by line;
    ``error_counts`` / ``warning_counts`` count all of them by code.
    """

    path: str
    provider: str
    model: str | None
    method: str | None
    examples: int = 0
    lines: int = 0
    blank_lines: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    format: str | None = None
    encoding: str = "utf-8"
    file_bytes: int = 0
    findings: Findings = field(default_factory=Findings)
    tokens: TokenStats | None = None
    notes: list[str] = field(default_factory=list)
    strict: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings.error_counts

    @property
    def errors(self) -> list[Problem]:
        return self.findings.errors

    @property
    def warnings(self) -> list[Problem]:
        return self.findings.warnings

    @property
    def error_counts(self) -> dict[str, int]:
        return dict(self.findings.error_counts)

    @property
    def warning_counts(self) -> dict[str, int]:
        return dict(self.findings.warning_counts)

    def to_dict(self) -> dict[str, Any]:
        f = self.findings
        return {
            "ok": self.ok,
            "examples": self.examples,
            "errors": [p.to_dict() for p in f.errors],
            "warnings": [p.to_dict() for p in f.warnings],
            "error_counts": dict(sorted(f.error_counts.items())),
            "warning_counts": dict(sorted(f.warning_counts.items())),
            "errors_not_shown": max(0, f.n_errors - len(f.errors)),
            "warnings_not_shown": max(0, f.n_warnings - len(f.warnings)),
            "provider": self.provider,
            "model": self.model,
            "method": self.method,
            "format": self.format,
            "formats": dict(self.formats),
            "path": self.path,
            "strict": self.strict,
            "stats": {
                "lines": self.lines,
                "blank_lines": self.blank_lines,
                "bytes": self.file_bytes,
                "encoding": self.encoding,
                "tokens": self.tokens.to_dict() if self.tokens else None,
            },
            "notes": list(self.notes),
        }


def type_name(v: Any) -> str:
    """A JSON type name for messages: ``string``, ``number``, ``object``…"""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def closest(name: str, choices) -> str:
    """`` (did you mean 'x'?)`` for an unknown key, or an empty string."""
    import difflib

    m = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{m[0]}'?)" if m else ""


def short(v: Any, n: int = 40) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 1] + "…"


# --- the fast path -------------------------------------------------------------------

from operator import itemgetter as _itemgetter

_get_role = _itemgetter("role")


def plain_conversation_ok(msgs: Any, cache: dict, sequence_ok) -> bool:
    """True when ``msgs`` is a list of ``{"role", "content"}`` messages (nothing else)
    with non-blank string contents, whose role sequence passes ``sequence_ok``.

    This is the shape of nearly every line of a well-made file; such a line needs no
    further check. False means "look closer" (the full rules then say what is wrong),
    never "wrong". Role sequences repeat, so their verdicts are kept in ``cache``
    (one dict per rule set, at most 4096 sequences).
    """
    if type(msgs) is not list:
        return False
    try:
        ok = cache[tuple(map(_get_role, msgs))]
    except (KeyError, TypeError):
        ok = learn_sequence(msgs, cache, sequence_ok)
    if not ok:
        return False
    for m in msgs:
        c = m.get("content")
        if type(c) is not str or len(m) != 2 or not c.strip():
            return False
    return True


def learn_sequence(msgs: list, cache: dict, sequence_ok) -> bool:
    """The verdict of ``sequence_ok`` on the roles of ``msgs``, kept in ``cache``.
    False when a message is no object or a role is missing or not hashable."""
    if not all(type(m) is dict for m in msgs):
        return False
    roles = tuple(m.get("role") for m in msgs)
    try:
        ok = bool(roles) and sequence_ok(roles)
        if len(cache) < 4096:
            cache[roles] = ok
    except TypeError:  # an unhashable role (a list...)
        return False
    return ok


# --- shared structural checks (OpenAI's chat schema, which Together follows) ---------

import re as _re

FUNCTION_NAME_RE = _re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def check_tool_calls(tool_calls: Any, where: str, ln: int, add, code: str = "bad_tool_call") -> list[str]:
    """Check an assistant's ``tool_calls`` (id, type function, function.name, arguments
    a JSON string). ``add(line, code, message)`` records a problem. Returns the ids."""
    ids: list[str] = []
    if not isinstance(tool_calls, list) or not tool_calls:
        add(ln, code, f"{where}.tool_calls must be a non-empty list, got {type_name(tool_calls)}")
        return ids
    for j, tc in enumerate(tool_calls):
        w = f"{where}.tool_calls[{j}]"
        if not isinstance(tc, dict):
            add(ln, code, f"{w} must be an object, got {type_name(tc)}")
            continue
        tid = tc.get("id")
        if not isinstance(tid, str) or not tid:
            add(ln, code, f"{w}.id must be a non-empty string")
        else:
            ids.append(tid)
        if tc.get("type") != "function":
            add(ln, code, f"{w}.type must be 'function', got {short(tc.get('type'))}")
        fn = tc.get("function")
        if not isinstance(fn, dict):
            add(ln, code, f"{w}.function must be an object with name and arguments")
            continue
        check_function_call(fn, w + ".function", ln, add, code)
    return ids


def check_function_call(fn: Any, w: str, ln: int, add, code: str = "bad_tool_call") -> None:
    import json

    if not isinstance(fn, dict):
        add(ln, code, f"{w} must be an object with name and arguments")
        return
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        add(ln, code, f"{w}.name must be a non-empty string")
    args = fn.get("arguments")
    if not isinstance(args, str):
        add(ln, code, f"{w}.arguments must be a string holding JSON, got {type_name(args)}")
    else:
        try:
            json.loads(args)
        except ValueError:
            add(ln, code, f"{w}.arguments is not valid JSON: {short(args)}")


def check_function_def(fn: Any, w: str, ln: int, add, code: str = "bad_tool") -> None:
    if not isinstance(fn, dict):
        add(ln, code, f"{w} must be an object, got {type_name(fn)}")
        return
    name = fn.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME_RE.match(name):
        add(ln, code, f"{w}.name must be 1-64 characters a-z, A-Z, 0-9, _ or -, got {short(name)}")
    if "description" in fn and not isinstance(fn["description"], str):
        add(ln, code, f"{w}.description must be a string")
    if "parameters" in fn and not isinstance(fn["parameters"], dict):
        add(ln, code, f"{w}.parameters must be a JSON Schema object, got {type_name(fn['parameters'])}")
    if "strict" in fn and fn["strict"] is not None and not isinstance(fn["strict"], bool):
        add(ln, code, f"{w}.strict must be true, false or null")


def check_tools(tools: Any, ln: int, add, where: str = "tools", code: str = "bad_tool") -> None:
    """``tools``: a list of ``{"type": "function", "function": {name, description?, parameters?}}``."""
    if not isinstance(tools, list):
        add(ln, code, f"{where} must be a list, got {type_name(tools)}")
        return
    for j, t in enumerate(tools):
        w = f"{where}[{j}]"
        if not isinstance(t, dict):
            add(ln, code, f"{w} must be an object, got {type_name(t)}")
            continue
        if t.get("type") != "function":
            add(ln, code, f"{w}.type must be 'function', got {short(t.get('type'))}")
        check_function_def(t.get("function"), w + ".function", ln, add, code)


# ----------------------------------------------------------------------- what a backend's checker is


@dataclass
class TokenSetup:
    """How a checker's examples are counted: the counter, the per-example limit and where it
    comes from, whether the model's chat template is rendered (``template``), and the
    provider's name when it truncates a long example instead of refusing it (``truncates``)."""

    counter: Any
    limit: int | None
    source: str | None
    template: bool = False
    truncates: str | None = None


class DataChecker:
    """The base of a backend's data checker (``Backend.data_checker(model, method)``).

    :func:`ftclient.validation.validate_file` streams the file and hands each parsed record to
    :meth:`check`; the attributes and the two hooks below carry the rest of a provider's rules
    (their defaults are the lenient ones)."""

    provider: str = ""
    #: The name used in messages ("OpenAI", "Together", "Local training").
    display: str = ""
    min_examples: int = 1
    #: The most examples a file may hold (None: no limit).
    max_examples: int | None = None
    formats_for_method: dict = {}
    #: The longest line read (None: the engine's usual limit).
    max_line_bytes: int | None = None
    #: Whether a pre-tokenized Parquet file is a training file here.
    takes_parquet: bool = False
    #: Whether a UTF-8 byte-order mark is an error (else a warning).
    bom_is_error: bool = False
    #: Whether text that is not UTF-8 is an error (else a warning).
    non_utf8_is_error: bool = True

    model: str | None = None
    method: str | None = None

    def check(self, rec: dict, ln: int, F: Findings) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def file_rules(self, path: Path, size: int, F: Findings) -> None:
        """Whole-file rules (name, size) before any line is read."""

    def token_setup(self, max_seq_len: int | None, notes: list[str]) -> TokenSetup | None:
        """How to count the examples' tokens (None: not counted; say why in ``notes``)."""
        return None


def _catalogue_entry(ref: str) -> tuple[Any, str | None]:
    """(the price catalogue's entry of a hosted model, None), or (None, why not)."""
    try:
        from ..prices import load_catalogue  # the catalogue only for a model's limit: validating need not read it

        return load_catalogue().model(ref), None
    except FtcError as e:
        return None, f"{ref}: {e.message}"
    except Exception as e:  # noqa: BLE001 - a catalogue problem must not stop validation
        return None, f"{ref}: limit unknown ({type(e).__name__}: {e})"


def catalogue_limit(ref: str) -> tuple[int | None, str | None]:
    """(a hosted model's per-example token limit, its source) from the price catalogue, or
    (None, why not)."""
    m, why = _catalogue_entry(ref)
    if m is None:
        return None, why
    lim = getattr(m, "max_example_tokens", None)
    if lim is None:
        return None, f"{ref}: the price catalogue gives no per-example token limit"
    return int(lim), f"{ref} per-example limit, price catalogue"


def token_limit(ref: str, max_seq_len: int | None, notes: list[str]) -> tuple[int | None, str | None]:
    """(the per-example token limit, its source): ``max_seq_len`` when given, else the price
    catalogue's for ``ref``; (None, None) with a note when neither knows one."""
    if max_seq_len is not None:
        return max_seq_len, "--max-seq-len"
    limit, source = catalogue_limit(ref)
    if limit is None:
        notes.append(f"no token limit checked: {source}")
        return None, None
    return limit, source


def hosted_token_setup(provider: str, model: str | None, max_seq_len: int | None, notes: list[str], *,
                       truncates: str | None = None) -> TokenSetup | None:
    """The token setup of a hosted provider of open models (Together, Fireworks): the model's
    counter (its own tokenizer when it is on this machine, found by its name or the catalogue's
    ``hf_id``, else the labelled approximation of its family) and its per-example limit
    (``max_seq_len``, else the price catalogue's). Without a model nor a limit, nothing is
    counted (a note says so). ``truncates``: the provider's name when it cuts a long example
    instead of refusing the file."""
    from .. import tokens

    if model is None and max_seq_len is None:
        notes.append("tokens not counted: give --model (and optionally --max-seq-len) to check lengths")
        return None
    ref = f"{provider}:{model}" if model else f"{provider}:unknown-model"
    entry = _catalogue_entry(ref)[0] if model else None
    try:
        counter = (tokens.get_counter(ref, tokenizer=getattr(entry, "hf_id", None)) if model
                   else tokens.ApproxCounter(ref, reason="no --model given"))
    except FtcError as e:
        notes.append(f"tokens not counted: {e.message}")
        return None
    return TokenSetup(counter, *token_limit(ref, max_seq_len, notes), truncates=truncates)
