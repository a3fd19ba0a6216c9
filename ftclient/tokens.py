"""Token counts of fine-tuning examples, offline.

``get_counter(model_ref)`` returns a counter for one model:

* OpenAI models (``openai:gpt-4.1-mini``...): exact. tiktoken with the BPE file that
  ships inside ftclient (``resources/tiktoken``), read from disk and checked against
  the sha256 that tiktoken itself expects (``tiktoken.load.check_hash``), so no
  download is ever attempted. Examples are counted with the per-message formula of
  OpenAI's cookbook (see :class:`OpenAICounter`).
* Open models (``together:``, ``fireworks:``, ``local:``, ``hf:``): exact when the
  model's own tokenizer and chat template are available offline (a local folder or
  the Hugging Face cache: its ``tokenizer.json`` is read with the ``tokenizers`` library and
  the template rendered with jinja2, no transformers or torch; transformers only for a
  tokenizer without ``tokenizer.json``); otherwise a clearly
  labelled approximation (:class:`ApproxCounter`) whose measured error is in its
  ``basis``.

Every counter has ``basis`` (how the number is made), ``exact``, ``count_record`` and
``count_records`` (batched, uses all CPU cores; OpenAI counts of
:data:`PROCESS_MIN_RECORDS` records or more are spread over forked worker processes on
Linux, since their per-record preparation is Python, else over threads). ``count_tokens(path_or_records,
model_ref)`` reads a JSONL file and returns :class:`TokenStats`.

Record shapes (canonical ChatML, as written by ``ftc data prepare``):

* SFT: ``{"messages": [{"role": ..., "content": ...}, ...]}``
* DPO: ``{"input": {"messages": [...]}, "preferred_output": [...],
  "non_preferred_output": [...]}`` -- counted as the input plus both outputs
  (the prompt once).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from bisect import bisect_left
from itertools import accumulate, islice
from operator import sub
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import ConfigError, DataError, FtcError

RESOURCES = Path(__file__).parent / "resources" / "tiktoken"

# sha256 of the BPE files, identical to the ``expected_hash`` that
# tiktoken_ext/openai_public.py declares (a test checks they agree).
ENCODING_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}

# pat_str and special tokens as in tiktoken_ext/openai_public.py (a test checks they agree).
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECIALS = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
_PATS = {"cl100k_base": _CL100K_PAT, "o200k_base": _O200K_PAT}

# The cookbook's constants (num_tokens_from_messages).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

# Approximation for open models without their tokenizer: factor x the o200k count
# of the example by the cookbook formula (a ChatML-like rendering) + a fixed number
# of tokens per example for templates that add text (Llama 3.1-3.3 put a 'Cutting
# Knowledge Date' preamble in the system message). Profiles chosen by model name.
# Measured by benchmarks/token_approx_error.py on banking77 (10,003 SFT examples,
# system + user + assistant) against the real tokenizers and templates.
APPROX_PROFILES: list[tuple[str, str, float, int, str]] = [
    # (name regex, profile, factor, tokens per example, measured error)
    (r"llama-?3\.[123]", "Llama-3.1/3.2/3.3 template", 1.03, 20,
     "total +0.0%, per example mean |error| 0.7%, p95 1.9% vs the Llama-3.1 tokenizer + template"),
    (r"llama-?3|llama3", "Llama-3 template", 1.03, 0,
     "total +0.0%, per example mean |error| 1.0%, p95 3.0% vs the Llama-3 tokenizer + template"),
    (r"qwen", "Qwen ChatML template", 1.00, 0,
     "total -0.3%, per example mean |error| 1.0%, p95 3.2% vs the Qwen2.5/3 tokenizer + ChatML"),
    (r"smollm", "SmolLM2 ChatML template", 1.00, 0,
     "not measured (SmolLM2's GGUF tokenizer needs torch to load here); the Qwen ChatML factor"),
    (r"", "generic ChatML", 1.03, 0,
     "not measured for this family; the measured families were within 0.3% in total and 1% per example on average"),
]
APPROX_FACTOR = 1.03  # the generic profile's factor
APPROX_ERROR_NOTE = (
    "calibrated and measured on banking77 (short support tickets), benchmarks/token_approx_error.py; "
    "other data may differ"
)

_lock = threading.Lock()
_encodings: dict[str, Any] = {}


# ----------------------------------------------------------------------- encodings
def encoding_for_model(model: str) -> str:
    """tiktoken encoding name of an OpenAI model: o200k_base or cl100k_base."""
    m = model.lower()
    if m.startswith("ft:"):
        m = m.split(":", 2)[1]
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")):
        return "o200k_base"
    if m.startswith(("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")):
        return "cl100k_base"
    raise ConfigError(
        f"no known tiktoken encoding for OpenAI model {model!r}",
        hint="Known families: gpt-4o*, gpt-4.1*, o1/o3/o4* (o200k_base); gpt-4, gpt-3.5-turbo (cl100k_base).",
    )


def load_encoding(name: str, path: str | os.PathLike | None = None):
    """A ``tiktoken.Encoding`` from the BPE file bundled in ftclient, never downloading.

    The file's sha256 is checked with tiktoken's own ``check_hash`` against the hash
    tiktoken expects; a changed file raises ConfigError. Cached per process.
    """
    if name not in ENCODING_SHA256:
        raise ConfigError(f"unknown encoding {name!r}", hint=f"Known: {', '.join(ENCODING_SHA256)}")
    key = name if path is None else f"{name}@{path}"
    enc = _encodings.get(key)
    if enc is not None:
        return enc
    with _lock:
        enc = _encodings.get(key)
        if enc is None:
            enc = _build_encoding(name, Path(path) if path is not None else RESOURCES / f"{name}.tiktoken")
            _encodings[key] = enc
    return enc


def _build_encoding(name: str, file: Path):
    import binascii

    import tiktoken
    from tiktoken.load import check_hash, read_file

    try:
        data = read_file(str(file))  # a plain path: tiktoken reads it from disk
    except OSError as e:
        raise ConfigError(
            f"{file}: the bundled tokenizer file cannot be read ({e.strerror})",
            hint="Reinstall ftclient; the file ships inside the package.",
        ) from None
    if not check_hash(data, ENCODING_SHA256[name]):
        raise ConfigError(
            f"{file}: sha256 does not match the {name} file tiktoken expects; refusing to use it",
            hint="The file was changed or corrupted. Reinstall ftclient.",
        )
    # Same result as tiktoken.load.load_tiktoken_bpe (a test checks), ~40% faster.
    fields = data.split()
    ranks = dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2])))
    return tiktoken.Encoding(name, pat_str=_PATS[name], mergeable_ranks=ranks, special_tokens=_SPECIALS[name])


# ------------------------------------------------------------- batched counting
_USEP = "<|endofprompt|>"  # placed after each string of a batch
_CHUNK_CHARS = 1 << 17
# Removing duplicate strings before encoding (flat_counts) costs about as much per
# string as encoding this many characters; on large lists it is done only when a
# sample shows that it saves more than that.
_DEDUPE_MIN_SAVED_CHARS = 8
_DEDUPE_SAMPLE = 2048
# From this many records on, OpenAICounter.count_split spreads the records over
# forked worker processes (Linux), one per core: the per-record preparation is
# Python and holds the GIL, so threads only parallelise the encoding itself.
PROCESS_MIN_RECORDS = 20_000


def _n_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _can_fork() -> bool:
    """Whether worker processes may be forked here: Linux, and no other Python thread
    running (a fork copies only the calling thread; a lock another thread holds
    would stay locked in the child)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


def flat_counts(enc, flat: Sequence[str], threads: int | None = None) -> list[int]:
    """``[len(enc.encode_ordinary(s)) for s in flat]``, each distinct string encoded once.

    A data set repeats its system prompt, roles and labels on every line; the
    distinct strings are counted by :func:`string_counts` (batched, all cores).
    On a large list whose sample shows too few repeats to pay for the dedupe, every
    string is encoded (same result).
    """
    if len(flat) > 2 * _DEDUPE_SAMPLE and not _dedupe_pays(flat):
        return string_counts(enc, flat, threads)
    uniq = list(dict.fromkeys(flat))
    if len(uniq) == len(flat):
        return string_counts(enc, uniq, threads)
    counts = dict(zip(uniq, string_counts(enc, uniq, threads)))
    return list(map(counts.__getitem__, flat))


def _dedupe_pays(flat: Sequence[str]) -> bool:
    """Whether removing repeats saves more encoding than it costs, judged on a sample
    spread over the list (multiplicative hashing of the index, so a fixed number of
    strings per record does not alias with the sampling step)."""
    n = len(flat)
    sample = [flat[i * 2654435761 % n] for i in range(_DEDUPE_SAMPLE)]
    seen = dict.fromkeys(sample)
    if len(seen) == len(sample):
        return False
    saved = sum(map(len, sample)) - sum(map(len, seen))
    return saved >= _DEDUPE_MIN_SAVED_CHARS * len(sample)


def batch_unit_counts(enc, units: Sequence[Sequence[str]], threads: int | None = None) -> list[int]:
    """For each unit (a list of strings): the sum of ``len(enc.encode_ordinary(s))``."""
    flat = [s for u in units for s in u]
    ends = list(accumulate(map(len, units)))
    return _sums(flat_counts(enc, flat, threads), ends)


def _sums(values: Sequence[int], ends: Sequence[int]) -> list[int]:
    """Sums of ``values`` over consecutive slices ending at ``ends``."""
    prefix = list(accumulate(values, initial=0))
    at = prefix.__getitem__
    e = list(map(at, ends))
    return list(map(sub, e, [0, *e[:-1]]))


def string_counts(enc, strings: Sequence[str], threads: int | None = None) -> list[int]:
    """``[len(enc.encode_ordinary(s)) for s in strings]``, batched and parallel."""
    if not strings:
        return []
    nthreads = threads or _n_threads()
    n = len(strings)
    acc = list(accumulate(map(len, strings)))  # characters up to and including each string
    total = acc[-1] + n
    # At least one chunk per thread when there is enough work, else as few as possible.
    target = max(min(_CHUNK_CHARS, total // nthreads + 1), 4096)
    chunks: list[Sequence[str]] = []
    start = 0
    while start < n:
        # the first string at which the chunk reaches `target` characters closes it
        end = bisect_left(acc, (acc[start - 1] if start else 0) + target, start) + 1
        if end > n:
            end = n
        chunks.append(strings[start:end])
        start = end
    usep_id = enc._special_tokens[_USEP]
    pattern = usep_id.to_bytes(4, "little")
    # The ids are little-endian uint32s below 2**24 (their top byte is 0), so when the
    # separator's three low bytes are all non-zero its 4-byte pattern cannot match
    # across two ids: every match is the separator itself.
    aligned = enc.max_token_value < 1 << 24 and all(pattern[:3])

    def work(chunk: Sequence[str]) -> list[int]:
        return _count_chunk(enc, chunk, usep_id, pattern, aligned)

    n = min(nthreads, len(chunks))
    if n <= 1:
        parts = [work(c) for c in chunks]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=n) as ex:
            parts = list(ex.map(work, chunks))
    if len(parts) == 1:
        return parts[0]
    out: list[int] = []
    for p in parts:
        out.extend(p)
    return out


def _count_chunk(enc, strings: Sequence[str], usep_id: int, pattern: bytes, aligned: bool = False) -> list[int]:
    text = _USEP.join(strings) + _USEP
    if text.count(_USEP) != len(strings):
        # A string contains the separator literally: encode those one by one as plain text.
        eo = enc.encode_ordinary
        return [len(eo(s)) for s in strings]
    allowed = {_USEP}
    core = enc._core_bpe
    try:
        buf = core.encode_to_tiktoken_buffer(text, allowed) if hasattr(core, "encode_to_tiktoken_buffer") else None
        toks = None if buf is not None else core.encode(text, allowed)
    except UnicodeEncodeError:  # lone surrogates: replaced, as tiktoken.Encoding.encode does
        return _count_chunk(enc, [s.encode("utf-16", "surrogatepass").decode("utf-16", "replace") for s in strings],
                            usep_id, pattern, aligned)
    if buf is not None:
        # Token ids as little-endian uint32; split at the separator id. Every piece
        # must be whole tokens (length % 4 == 0); otherwise use the list path.
        pieces = bytes(buf).split(pattern)
        if len(pieces) == len(strings) + 1 and (aligned or not any(len(p) & 3 for p in pieces)):
            pieces.pop()
            return [len(p) >> 2 for p in pieces]
        toks = list(memoryview(buf).cast("B").cast("I"))
    out = []
    find = toks.index
    pos = 0
    for _ in strings:
        end = find(usep_id, pos)
        out.append(end - pos)
        pos = end + 1
    return out


# ------------------------------------------------------------- record shapes
def record_conversations(record: Any) -> tuple[list, list | None, list | None]:
    """``(prompt_messages, preferred, non_preferred)`` of a record; raises ValueError.

    SFT: prompt_messages is the whole conversation and the outputs are None.
    """
    if not isinstance(record, dict):
        raise ValueError(f"an example must be a JSON object, not {type(record).__name__}")
    if "messages" in record:
        msgs = record["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise ValueError("'messages' must be a non-empty list")
        _check_messages(msgs, "messages")
        return msgs, None, None
    if "input" in record and "preferred_output" in record:
        inp = record["input"]
        msgs = inp.get("messages") if isinstance(inp, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise ValueError("'input.messages' must be a non-empty list")
        pref, npref = record.get("preferred_output"), record.get("non_preferred_output")
        if not isinstance(pref, list) or not isinstance(npref, list):
            raise ValueError("'preferred_output' and 'non_preferred_output' must be lists of messages")
        _check_messages(msgs, "input.messages")
        _check_messages(pref, "preferred_output")
        _check_messages(npref, "non_preferred_output")
        return msgs, pref, npref
    keys = ", ".join(sorted(record)) or "none"
    raise ValueError(
        f"not a chat example: expected 'messages' (SFT) or 'input'/'preferred_output' (DPO); keys: {keys}"
    )


def _check_messages(msgs: list, where: str) -> None:
    for j, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise ValueError(f"{where}[{j}] must be an object with 'role' and 'content'")
        if not isinstance(m.get("role"), str):
            raise ValueError(f"{where}[{j}] has no 'role'")


def content_text(content: Any) -> str:
    """Text of a message content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# ------------------------------------------------------------------ counters
class OpenAICounter:
    """Exact OpenAI counts: tiktoken + the cookbook's per-message formula.

    ``num_tokens_from_messages`` ('How to count tokens with tiktoken', used by 'Data
    preparation and analysis for chat model fine-tuning'):
    3 tokens per message, the encoded string value of every key (role, content,
    name, tool_call_id...), +1 when the key is ``name``, +3 for the reply priming.

    Beyond the cookbook (which only handles string values):
    * non-string values are not encoded: ``weight`` (0/1), ``null`` content;
    * content as a list of parts: the ``text`` of each text part is encoded; image
      or audio parts are not counted (OpenAI bills them otherwise);
    * ``tool_calls``: each call's ``function.name`` and ``function.arguments`` are
      encoded (ids and types not); record-level ``tools``/``functions``
      definitions: their compact JSON is encoded. OpenAI does not publish how it
      renders tools, so these two parts are close, not guaranteed exact;
    * DPO: the formula over input messages + preferred + non-preferred output
      (prompt counted once, one reply priming).
    """

    exact = True

    def __init__(self, model: str, encoding: str | None = None, *, encoding_file: str | os.PathLike | None = None):
        self.model = model
        self.encoding_name = encoding or encoding_for_model(model)
        self._encoding_file = encoding_file
        self._enc = None
        self._rcost: dict[str, int] | None = None
        self.basis = (
            f"exact: tiktoken {self.encoding_name} (bundled, sha256-verified) "
            "+ OpenAI cookbook per-message formula"
        )

    @property
    def encoding(self):
        if self._enc is None:
            self._enc = load_encoding(self.encoding_name, self._encoding_file)
        return self._enc

    # Each record -> strings to encode + fixed tokens, in 3 units (prompt, completion,
    # rest) so that one pass also gives prompt and completion sizes for inference.
    @staticmethod
    def _msg(m: dict, other: list[str], content_out: list[str]) -> int:
        fixed = TOKENS_PER_MESSAGE
        for key, value in m.items():
            if key == "content":
                if isinstance(value, str):
                    content_out.append(value)
                elif isinstance(value, list):
                    content_out.append(content_text(value))
            elif isinstance(value, str):
                other.append(value)
                if key == "name":
                    fixed += TOKENS_PER_NAME
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict):
                        for k in ("name", "arguments"):
                            if isinstance(fn.get(k), str):
                                content_out.append(fn[k])
        return fixed

    def _role_costs(self) -> dict[str, int]:
        """``TOKENS_PER_MESSAGE`` + the tokens of the role, for the usual roles."""
        rc = self._rcost
        if rc is None:
            eo = self.encoding.encode_ordinary
            rc = self._rcost = {
                r: TOKENS_PER_MESSAGE + len(eo(r))
                for r in ("system", "user", "assistant", "developer", "tool", "function")
            }
        return rc

    def _prepare(self, records: Iterable[Any], offset: int = 0):
        """The strings to encode, in three consecutive units per record (prompt,
        completion, rest), the units' ends, and the fixed tokens of prompt and rest.
        ``offset``: index of the first record (for the example number of an error)."""
        flat: list[str] = []
        app = flat.append
        ends: list[int] = []
        mark = ends.append
        fixed_p: list[int] = []
        fixed_r: list[int] = []
        add_p = fixed_p.append
        add_r = fixed_r.append
        msg = self._msg
        rcost = self._role_costs().get
        a_cost = rcost("assistant")
        for i, r in enumerate(records, offset):
            # Fast path, the usual SFT shape: {"messages": [{"role": str, "content": str},
            # ..., {"role": "assistant", "content": str}]} with usual roles, whose
            # tokens come from _role_costs. Same result as the general path below,
            # which handles everything else.
            if type(r) is dict and len(r) == 1:
                msgs = r.get("messages")
                if type(msgs) is list and msgs:
                    start = len(flat)
                    fp = REPLY_PRIMING - a_cost  # the last message's cost is added below
                    for m in msgs:
                        if (
                            type(m) is dict
                            and len(m) == 2
                            and type(c := m.get("content")) is str
                            and type(role := m.get("role")) is str
                            and (k := rcost(role)) is not None
                        ):
                            app(c)
                            fp += k
                        else:
                            break
                    else:
                        if role == "assistant":
                            e = len(flat)
                            ends += (e - 1, e, e)
                            add_p(fp)
                            add_r(a_cost)
                            continue
                    del flat[start:]  # not the usual shape after all
            try:
                msgs, pref, npref = record_conversations(r)
            except ValueError as e:
                raise DataError(f"example {i + 1}: {e}") from None
            fp = REPLY_PRIMING
            fr = 0
            tools = r.get("tools") or r.get("functions")
            if tools is None and isinstance(r.get("input"), dict):
                tools = r["input"].get("tools") or r["input"].get("functions")
            if tools:
                app(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
            if pref is None:
                # SFT: the completion is the last assistant message, the prompt what precedes it.
                last = len(msgs) - 1
                while last >= 0 and msgs[last].get("role") != "assistant":
                    last -= 1
                prompt_msgs = msgs[:last] if last >= 0 else msgs
                out_msgs = [msgs[last]] if last >= 0 else []
                tail = msgs[last + 1 :] if last >= 0 else []
            else:
                prompt_msgs, out_msgs, tail = msgs, pref[:1], pref[1:] + npref
            for m in prompt_msgs:
                if len(m) == 2 and type(m.get("content")) is str and type(m.get("role")) is str:
                    app(m["role"])
                    app(m["content"])
                    fp += TOKENS_PER_MESSAGE
                else:
                    fp += msg(m, flat, flat)
            mark(len(flat))
            rest: list[str] = []
            for m in out_msgs:
                fr += msg(m, rest, flat)
            mark(len(flat))
            for m in tail:
                fr += msg(m, rest, rest)
            flat.extend(rest)
            mark(len(flat))
            add_p(fp)
            add_r(fr)
        return flat, ends, fixed_p, fixed_r

    def _split_serial(
        self, records: Iterable[Any], offset: int = 0, threads: int | None = None
    ) -> tuple[list[int], list[int], list[int]]:
        """(total, prompt, completion) in this process: one batched encoding of all
        the strings (over ``threads`` threads)."""
        flat, ends, fixed_p, fixed_r = self._prepare(records, offset)
        counts = _sums(flat_counts(self.encoding, flat, threads), ends)
        prompt = list(map(int.__add__, counts[0::3], fixed_p))
        completion = counts[1::3]
        other = list(map(int.__add__, counts[2::3], fixed_r))
        total = list(map(int.__add__, map(int.__add__, prompt, completion), other))
        return total, prompt, completion

    def _split_counts(
        self, records: Sequence[Any], *, process_min: int | None = None
    ) -> tuple[list[int], list[int], list[int]]:
        """(total, prompt, completion) per record. ``process_min``: records from which
        on forked worker processes are used (default :data:`PROCESS_MIN_RECORDS`)."""
        if not hasattr(records, "__len__"):
            records = list(records)
        n = len(records)
        nproc = min(_n_threads(), n)
        if nproc > 1 and n >= (PROCESS_MIN_RECORDS if process_min is None else process_min) and _can_fork():
            return self._split_forked(records, nproc)
        return self._split_serial(records)

    def _split_forked(self, records: Sequence[Any], nproc: int) -> tuple[list[int], list[int], list[int]]:
        """The records cut in ``nproc`` consecutive ranges: this process counts the
        first, forked children (which inherit the built encoding and the records) the
        others, each on one core, and send back their counts as int64 arrays through
        a pipe. A child's error is raised here as the error of its first bad record;
        the first range's error wins, as in the serial order. A child that dies
        without an answer has its range counted here."""
        import gc
        import pickle
        from array import array

        n = len(records)
        bounds = [n * k // nproc for k in range(nproc + 1)]
        self._role_costs()  # builds the encoding before the fork
        children: list[tuple[int, int]] = []  # (pid, read end)
        gc_was = gc.isenabled()
        gc.disable()  # no collection touching (and copying) the shared pages
        try:
            for k in range(1, nproc):
                rfd, wfd = os.pipe()
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child; it always leaves by os._exit
                    try:
                        os.close(rfd)
                        for _, fd in children:
                            os.close(fd)
                        a, b = bounds[k], bounds[k + 1]
                        try:
                            t, p, c = self._split_serial(islice(records, a, b), a, threads=1)
                            out = b"K" + array("q", t + p + c).tobytes()
                        except FtcError as e:
                            out = b"E" + pickle.dumps((type(e), e.message, e.hint))
                        except BaseException as e:  # noqa: BLE001 - handed to the parent
                            try:
                                out = b"X" + pickle.dumps(e)
                            except Exception:  # noqa: BLE001
                                out = b"X" + pickle.dumps(RuntimeError(f"token counting worker: {e!r}"))
                        view = memoryview(out)
                        while view:
                            view = view[os.write(wfd, view) :]
                    finally:
                        os._exit(0)
                os.close(wfd)
                children.append((pid, rfd))
            results = [self._split_serial(islice(records, 0, bounds[1]), 0, threads=1)]
            for k, (pid, rfd) in enumerate(children, 1):
                parts = []
                while True:
                    chunk = os.read(rfd, 1 << 20)
                    if not chunk:
                        break
                    parts.append(chunk)
                data = b"".join(parts)
                m = bounds[k + 1] - bounds[k]
                if data[:1] == b"K" and len(data) == 1 + 24 * m:
                    arr = array("q")
                    arr.frombytes(memoryview(data)[1:])
                    results.append((arr[:m].tolist(), arr[m : 2 * m].tolist(), arr[2 * m :].tolist()))
                elif data[:1] == b"E":
                    cls, message, hint = pickle.loads(data[1:])
                    raise cls(message, hint=hint)
                elif data[:1] == b"X":
                    raise pickle.loads(data[1:])
                else:  # the child died without an answer: count its range here
                    results.append(self._split_serial(islice(records, bounds[k], bounds[k + 1]), bounds[k]))
        finally:
            for pid, rfd in children:
                os.close(rfd)
                try:
                    if os.waitpid(pid, os.WNOHANG) == (0, 0):
                        os.kill(pid, 9)
                        os.waitpid(pid, 0)
                except ChildProcessError:  # pragma: no cover - already reaped
                    pass
            if gc_was:
                gc.enable()
        total: list[int] = []
        prompt: list[int] = []
        completion: list[int] = []
        for t, p, c in results:
            total += t
            prompt += p
            completion += c
        return total, prompt, completion

    def count_records(self, records: Sequence[Any]) -> list[int]:
        return self._split_counts(records)[0]

    def count_record(self, record: Any) -> int:
        return self.count_records([record])[0]

    def count_split(self, records: Sequence[Any]) -> tuple[list[int], list[int], list[int]]:
        """(total, prompt, completion) per record. prompt: what an inference request
        bills as input (messages before the last assistant one, + reply priming);
        completion: tokens of the last assistant content (DPO: the preferred one)."""
        return self._split_counts(records)


class ApproxCounter:
    """Open model without its tokenizer offline: an approximation, labelled as such.

    count = round(factor x o200k count of the example by the cookbook formula
    (3 tokens per message + role + content, +3) + per-example template tokens),
    with factor and template tokens from the model family's profile
    (:data:`APPROX_PROFILES`), whose measured error is given in ``basis``.
    """

    exact = False

    def __init__(self, model_ref: str, reason: str = "its tokenizer is not available offline"):
        import re

        self.model = model_ref
        low = model_ref.lower()
        for pattern, profile, factor, extra, error in APPROX_PROFILES:
            if re.search(pattern, low):
                break
        self.profile, self.factor, self.extra = profile, factor, extra
        self._base = OpenAICounter("gpt-4o", "o200k_base")
        self.basis = (
            f"estimated: {reason}; tiktoken o200k count of the ChatML rendering x {factor:g}"
            + (f" + {extra} template tokens" if extra else "")
            + f" ({profile} profile; measured error: {error}; {APPROX_ERROR_NOTE})"
        )

    def scale(self, total, prompt, completion):
        f, x = self.factor, self.extra
        return (
            [round(t * f) + x for t in total],
            [round(p * f) + x for p in prompt],
            [round(c * f) for c in completion],
        )

    def count_split(self, records):
        return self.scale(*self._base.count_split(records))

    def count_records(self, records):
        return self.count_split(records)[0]

    def count_record(self, record):
        return self.count_records([record])[0]


class HFCounter:
    """Exact counts with the model's own tokenizer and chat template (transformers).

    SFT: tokens of ``apply_chat_template(messages)``. DPO: the input once plus both
    output messages, i.e. n(input+preferred) + n(input+non_preferred) - n(input). Content-part lists are flattened to their text; ``weight`` is dropped.
    """

    exact = True

    def __init__(self, tokenizer, source: str):
        self.tok = tokenizer
        self.source = source
        self.basis = f"exact: the model's own tokenizer and chat template ({source}), via transformers, offline"

    @staticmethod
    def _clean(msgs: list) -> list[dict]:
        out = []
        for m in msgs:
            d = {k: v for k, v in m.items() if k != "weight"}
            if not isinstance(d.get("content"), str):
                d["content"] = content_text(d.get("content"))
            out.append(d)
        return out

    def _render(self, msgs: list, add_generation_prompt: bool = False) -> str:
        return self.tok.apply_chat_template(
            self._clean(msgs), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def count_split(self, records: Sequence[Any]):
        texts: list[str] = []
        plan: list[tuple[str, int]] = []
        for i, r in enumerate(records):
            try:
                msgs, pref, npref = record_conversations(r)
            except ValueError as e:
                raise DataError(f"example {i + 1}: {e}") from None
            if pref is None:
                last = len(msgs) - 1
                while last >= 0 and msgs[last].get("role") != "assistant":
                    last -= 1
                prompt_msgs = msgs[:last] if last >= 0 else msgs
                texts += [self._render(msgs), self._render(prompt_msgs, add_generation_prompt=True)]
                plan.append(("sft", 2))
            else:
                texts += [
                    self._render(msgs + pref),
                    self._render(msgs + npref),
                    self._render(msgs, add_generation_prompt=True),
                    self._render(msgs),
                ]
                plan.append(("dpo", 4))
        ids = self.tok(texts, add_special_tokens=False)["input_ids"] if texts else []
        lens = [len(x) for x in ids]
        total, prompt, completion = [], [], []
        k = 0
        for kind, n in plan:
            if kind == "sft":
                t, p = lens[k], lens[k + 1]
                total.append(t)
                prompt.append(p)
                completion.append(max(t - p, 0))
            else:
                a, b, p, plain = lens[k], lens[k + 1], lens[k + 2], lens[k + 3]
                total.append(a + b - plain)
                prompt.append(p)
                completion.append(max(a - p, 0))
            k += n
        return total, prompt, completion

    def count_records(self, records):
        return self.count_split(records)[0]

    def count_record(self, record):
        return self.count_records([record])[0]


# ------------------------------------------------------------------ torch-free tokenizer

def _token_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


class LightTokenizer:
    """A model's own tokenizer without transformers (and so without torch): ``tokenizer.json``
    through the ``tokenizers`` library, the chat template rendered with jinja2 the way
    transformers renders it (sandboxed, trim_blocks/lstrip_blocks, ``tojson``,
    ``raise_exception``, ``{% generation %}``, the special tokens as variables).

    Offers the two calls :class:`ftclient.tokens.HFCounter` makes: ``apply_chat_template(...,
    tokenize=False)`` and ``tok(texts, add_special_tokens=False)["input_ids"]``."""

    def __init__(self, folder: "str | os.PathLike"):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.folder = folder
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cfg = _read_json(folder / "tokenizer_config.json")
        special = {**_read_json(folder / "special_tokens_map.json"), **cfg}
        self.special = {k: t for k, v in special.items() if k.endswith("_token") and (t := _token_text(v)) is not None}
        template: Any = None
        if (folder / "chat_template.jinja").is_file():
            template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        else:
            template = cfg.get("chat_template")
            if isinstance(template, list):
                named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
                template = named.get("default")
        self.chat_template = template if isinstance(template, str) and template else None
        self._compiled = None

    def _template(self):
        if self._compiled is None:
            import jinja2
            from jinja2.ext import Extension
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            class Generation(Extension):
                tags = {"generation"}

                def parse(self, parser):
                    lineno = next(parser.stream).lineno
                    body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
                    return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

                def _render(self, caller):
                    return caller()

            def raise_exception(message):
                raise jinja2.exceptions.TemplateError(message)

            def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
                return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                                  sort_keys=sort_keys)

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[Generation, jinja2.ext.loopcontrols])
            env.filters["tojson"] = tojson
            env.globals["raise_exception"] = raise_exception
            env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
            self._compiled = env.from_string(self.chat_template)
        return self._compiled

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = False, **kw):
        if tokenize:
            raise NotImplementedError("LightTokenizer renders text only")
        return self._template().render(messages=messages, tools=None, documents=None,
                                       add_generation_prompt=add_generation_prompt, **self.special)

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = False) -> dict[str, list[list[int]]]:
        enc = self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in enc]}


# ------------------------------------------------------------------ factory
PROVIDERS = ("openai", "together", "fireworks", "local", "hf")


def split_ref(model_ref: str) -> tuple[str, str]:
    """'provider:model' -> (provider, model). A bare gpt-*/o* name means openai."""
    if not isinstance(model_ref, str) or not model_ref.strip():
        raise ConfigError("empty model reference", hint="Use PROVIDER:MODEL, e.g. openai:gpt-4.1-mini.")
    ref = model_ref.strip()
    if ":" in ref and not ref.startswith("ft:"):
        provider, _, name = ref.partition(":")
        provider = provider.lower()
        if not name:
            raise ConfigError(f"{model_ref!r}: no model name after '{provider}:'")
        return provider, name
    low = ref.lower()
    if low.startswith(("gpt-", "o1", "o3", "o4", "ft:", "chatgpt")):
        return "openai", ref
    raise ConfigError(
        f"{model_ref!r}: give the provider, as PROVIDER:MODEL",
        hint="e.g. openai:gpt-4.1-mini, together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference, local:./my-model",
    )


def _hf_cache_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        dirs.append(Path(os.environ["HUGGINGFACE_HUB_CACHE"]))
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    dirs.append(home / "hub")
    return dirs


def tokenizer_dir(name: str) -> Path | None:
    """The folder holding a tokenizer for ``name`` (a path, or a repo id in the HF cache: the
    snapshot ``refs/main`` names, else the newest), found without importing transformers;
    None when there is none."""
    p = Path(name).expanduser()
    if p.is_dir() and any((p / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return p
    if "/" in name and not p.exists():
        return cached_snapshot(name, lambda snap: (snap / "tokenizer_config.json").exists()
                               or (snap / "tokenizer.json").exists())
    return None


def cached_snapshot(repo_id: str, wanted: Callable[[Path], bool]) -> Path | None:
    """The snapshot folder of ``repo_id`` in the Hugging Face cache that ``wanted`` accepts:
    the one ``refs/main`` names first, then the newest. Never touches the network."""
    if "/" not in repo_id:
        return None
    folder = "models--" + repo_id.replace("/", "--")
    for d in _hf_cache_dirs():
        snaps = d / folder / "snapshots"
        if not snaps.is_dir():
            continue
        main = d / folder / "refs" / "main"
        try:
            named = snaps / main.read_text(encoding="utf-8").strip() if main.is_file() else None
        except OSError:
            named = None
        cands = [named] if named is not None and named.is_dir() else []
        cands += sorted((s for s in snaps.iterdir() if s.is_dir()), key=lambda s: s.stat().st_mtime, reverse=True)
        for snap in cands:
            if wanted(snap):
                return snap
    return None


def find_local_tokenizer(name: str) -> str | None:
    """``name`` when :func:`tokenizer_dir` finds a tokenizer for it (a folder or a cached
    repo id), else None."""
    return name if tokenizer_dir(name) is not None else None


_counters: dict[tuple[str, str | None], Any] = {}


def get_counter(model_ref: str, *, tokenizer: str | None = None):
    """The token counter for ``model_ref`` (``openai:gpt-4.1-mini``, ``together:...``,
    ``fireworks:...``, ``local:PATH``, ``hf:REPO_ID``).

    ``tokenizer``: a local folder or HF repo id whose tokenizer to use for an open
    model (e.g. the HF id behind a Together model name).
    """
    key = (model_ref, tokenizer)
    c = _counters.get(key)
    if c is not None:
        return c
    provider, name = split_ref(model_ref)
    if provider == "openai":
        c = OpenAICounter(name)
    elif provider == "local" and (name == "default" or name.lower().endswith(".gguf")):
        # A GGUF model's tokenizer is read from its one-time conversion (local_backend.models).
        from .local_backend.calibrate import offline_counter

        c = offline_counter(name)
    elif provider in ("together", "fireworks", "local", "hf", "modal", "runpod", "lambda", "own"):
        src = None
        for cand in (tokenizer, name):
            if cand and find_local_tokenizer(cand):
                src = cand
                break
        if src is None:
            if provider in ("local", "hf") and Path(name).expanduser().exists():
                raise ConfigError(
                    f"{name}: no tokenizer files there (tokenizer.json / tokenizer_config.json)",
                    hint="Point local: at a model folder saved with save_pretrained().",
                )
            c = ApproxCounter(model_ref)
        else:
            c = _load_hf_counter(src)
    else:
        raise ConfigError(
            f"unknown provider {provider!r} in {model_ref!r}",
            hint=f"Use one of: {', '.join(PROVIDERS)}.",
        )
    _counters[key] = c
    return c


def light_counter(folder: Path, source: str) -> "HFCounter | str":
    """The exact counter from ``folder``'s ``tokenizer.json`` and chat template, torch-free
    (:class:`LightTokenizer`); or, when that cannot be had, the reason why."""
    try:
        tok = LightTokenizer(folder)
    except Exception as e:  # noqa: BLE001 - tokenizers missing or an unreadable file
        return f"its tokenizer.json could not be read ({type(e).__name__})"
    if tok.chat_template is None:
        return "its tokenizer has no chat template"
    c = HFCounter(tok, source)
    c.basis = f"exact: the model's own tokenizer (tokenizer.json) and chat template ({source}), rendered offline"
    return c


def _load_hf_counter(src: str):
    """Exact counter from ``src``'s tokenizer: its ``tokenizer.json`` and chat template read
    without transformers (:class:`LightTokenizer`, fast and torch-free) when it has one, else
    transformers' AutoTokenizer (e.g. a sentencepiece-only tokenizer)."""
    folder = tokenizer_dir(src)
    if folder is not None and (folder / "tokenizer.json").is_file():
        c = light_counter(folder, src)
        if not isinstance(c, str):
            return c
    try:
        from transformers import AutoTokenizer
    except ImportError:  # pragma: no cover - depends on the install
        return ApproxCounter(src, reason="transformers is not installed (pip install 'ftclient[hf]')")
    try:
        tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any loading failure means: not available offline
        return ApproxCounter(src, reason=f"its tokenizer could not be loaded offline ({type(e).__name__})")
    if not getattr(tok, "chat_template", None):
        return ApproxCounter(src, reason="its tokenizer has no chat template")
    return HFCounter(tok, src)


# ------------------------------------------------------------------ file level
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
    from .data.parquet import is_parquet_path, not_jsonl_error
    from .fileio import iter_lines

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
