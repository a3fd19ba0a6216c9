"""Counting tokens fast: batched encoding over threads, and forked worker processes.

:func:`string_counts` joins many strings with a special-token separator and encodes them
in chunks, one thread per core (tiktoken releases the GIL); :func:`flat_counts` encodes
each distinct string once. Per-record preparation is Python and holds the GIL, so a
counter spreads :data:`PROCESS_MIN_RECORDS` records or more over forked worker
processes on Linux (:func:`split_forked`), else over threads.

:data:`PROCESS_MIN_RECORDS` and :func:`n_threads` are read from this module at call
time: set them here (tests, benchmarks), not on ``ftclient.tokens``.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from array import array
from bisect import bisect_left
from itertools import accumulate, islice
from operator import sub
from typing import Any, Callable, Sequence

from ..errors import FtcError

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


def n_threads() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def can_fork() -> bool:
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
    return sums(flat_counts(enc, flat, threads), ends)


def sums(values: Sequence[int], ends: Sequence[int]) -> list[int]:
    """Sums of ``values`` over consecutive slices ending at ``ends``."""
    prefix = list(accumulate(values, initial=0))
    at = prefix.__getitem__
    e = list(map(at, ends))
    return list(map(sub, e, [0, *e[:-1]]))


def string_counts(enc, strings: Sequence[str], threads: int | None = None) -> list[int]:
    """``[len(enc.encode_ordinary(s)) for s in strings]``, batched and parallel."""
    if not strings:
        return []
    nthreads = threads or n_threads()
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


def split_forked(
    serial: Callable[..., tuple[list[int], list[int], list[int]]], records: Sequence[Any], nproc: int
) -> tuple[list[int], list[int], list[int]]:
    """(total, prompt, completion) per record by ``serial(records, offset, threads=...)``
    (a counter's one-process count of ``records``, whose first is example ``offset``),
    over the records cut in ``nproc`` consecutive ranges: this process counts the
    first, forked children (which inherit the built encoding and the records) the
    others, each on one core, and send back their counts as int64 arrays through
    a pipe. A child's error is raised here as the error of its first bad record;
    the first range's error wins, as in the serial order. A child that dies
    without an answer has its range counted here. The caller builds its encoding
    before, so that the children inherit it."""
    import pickle  # only this path needs it

    n = len(records)
    bounds = [n * k // nproc for k in range(nproc + 1)]
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
                        t, p, c = serial(islice(records, a, b), a, threads=1)
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
        results = [serial(islice(records, 0, bounds[1]), 0, threads=1)]
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
                results.append(serial(islice(records, bounds[k], bounds[k + 1]), bounds[k]))
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
