"""Cleaning: normalised text of a record, exact dedupe and near-duplicate detection.

Exact duplicates are found by a 64-bit BLAKE2b hash of the whole record's normalised
text (Unicode NFKC, casefold, whitespace collapsed): 8 bytes of state per kept record.

Near duplicates use MinHash over word 3-shingles (punctuation removed) with banded LSH
(Broder 1997; Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3): a
record is a near duplicate when its estimated Jaccard similarity to an earlier kept
record is at least the threshold. The implementation is a compact NumPy one rather than
``datasketch`` (which would add SciPy): signatures are computed for a whole record in
one vectorised step, shingles are hashed with CRC-32 (stable across processes, so the
same input gives the same output), and LSH candidates are verified against the stored
signature, so the band parameters only trade speed for recall. State per kept record:
``num_perm`` x 4 bytes of signature plus one dict entry per band.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from functools import lru_cache
from typing import Any

_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)


def normalize(text: str) -> str:
    """Unicode NFKC, casefold, whitespace collapsed to single spaces, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def record_text(record: dict) -> str:
    """All the text of a canonical SFT or DPO record, role-tagged, in order."""
    if "messages" in record:
        parts = [f"{m['role']}: {m['content']}" for m in record["messages"]]
    else:
        parts = [f"{m['role']}: {m['content']}" for m in record["input"]["messages"]]
        parts += [f"chosen: {m['content']}" for m in record["preferred_output"]]
        parts += [f"rejected: {m['content']}" for m in record["non_preferred_output"]]
    return "\n".join(parts)


def _h64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class ExactDeduper:
    """Remembers 64-bit hashes of normalised texts; :meth:`seen` adds and reports repeats."""

    def __init__(self) -> None:
        self._hashes: set[int] = set()

    def seen(self, normalized_text: str) -> bool:
        h = _h64(normalized_text.encode("utf-8", "surrogatepass"))
        if h in self._hashes:
            return True
        self._hashes.add(h)
        return False

    def __len__(self) -> int:
        return len(self._hashes)


def shingles(normalized_text: str, k: int = 3) -> set[str]:
    """Word k-shingles of an already normalised text, punctuation removed."""
    words = _PUNCT.sub(" ", normalized_text).split()
    if not words:
        return set()
    if len(words) <= k:
        return {" ".join(words)}
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


@lru_cache(maxsize=16)
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.2, fn_weight: float = 0.8) -> tuple[int, int]:
    """Bands ``b`` and rows ``r`` (b * r <= num_perm) minimising weighted false pos/neg areas.

    False negatives weigh more: candidates are verified against their signatures, so a
    false positive costs time, a false negative a missed duplicate.
    """
    steps = 200

    def area(f, lo: float, hi: float) -> float:
        h = (hi - lo) / steps
        return sum(f(lo + (i + 0.5) * h) for i in range(steps)) * h

    best = (float("inf"), 1, num_perm)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = area(lambda s: 1 - (1 - s**r) ** b, 0.0, threshold)
            fn = area(lambda s: (1 - s**r) ** b, threshold, 1.0)
            err = fp * fp_weight + fn * fn_weight
            if err < best[0]:
                best = (err, b, r)
    return best[1], best[2]


class NearDupIndex:
    """Streaming MinHash-LSH: :meth:`check_add` tells whether a text is a near duplicate.

    A text that is not a near duplicate is added to the index. Deterministic: the hash
    permutations come from a fixed seed and shingles are hashed with CRC-32.
    """

    CHUNK = 4096

    def __init__(self, threshold: float = 0.9, num_perm: int = 64, seed: int = 1):
        import numpy as np

        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.np = np
        self.threshold = threshold
        self.num_perm = num_perm
        self.bands, self.rows = lsh_params(round(threshold, 4), num_perm)
        rng = np.random.RandomState(seed)
        # Multiply-add-shift hashing (Dietzfelbinger 1996): 2-universal on 32-bit keys.
        self._a = rng.randint(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.randint(0, 2**63, size=num_perm, dtype=np.uint64)
        self._chunks: list[Any] = []
        self._n = 0
        self._buckets: dict[int, Any] = {}  # band key -> index or list of indices

    def signature(self, shingle_set: set[str]):
        np = self.np
        # CRC-32 is only the key function (stable across processes, fast); the
        # multiply-add-shift family below does the mixing.
        hv = np.fromiter(
            (zlib.crc32(s.encode("utf-8", "surrogatepass")) for s in shingle_set),
            dtype=np.uint64,
            count=len(shingle_set),
        )
        # h_i(x) = ((a_i * x + b_i) mod 2**64) >> 32; uint64 arithmetic wraps mod 2**64.
        ph = (np.outer(hv, self._a) + self._b) >> np.uint64(32)
        return ph.min(axis=0).astype(np.uint32)

    def _sig(self, i: int):
        return self._chunks[i // self.CHUNK][i % self.CHUNK]

    def _keys(self, sig) -> list[int]:
        r = self.rows
        return [_h64(bytes([band]) + sig[band * r : (band + 1) * r].tobytes()) for band in range(self.bands)]

    def check_add(self, normalized_text: str) -> bool:
        """True if the text is a near duplicate of an indexed one; else index it, False."""
        sh = shingles(normalized_text)
        if not sh:
            return False
        sig = self.signature(sh)
        keys = self._keys(sig)
        cands: set[int] = set()
        for k in keys:
            v = self._buckets.get(k)
            if v is None:
                continue
            if isinstance(v, int):
                cands.add(v)
            else:
                cands.update(v)
        if cands:
            np = self.np
            others = np.stack([self._sig(i) for i in sorted(cands)])
            est = (others == sig).mean(axis=1)
            if float(est.max()) >= self.threshold:
                return True
        i = self._n
        if i % self.CHUNK == 0:
            self._chunks.append(self.np.empty((self.CHUNK, self.num_perm), dtype=self.np.uint32))
        self._chunks[-1][i % self.CHUNK] = sig
        self._n += 1
        for k in keys:
            v = self._buckets.get(k)
            if v is None:
                self._buckets[k] = i
            elif isinstance(v, int):
                self._buckets[k] = [v, i]
            else:
                v.append(i)
        return False

    def __len__(self) -> int:
        return self._n
