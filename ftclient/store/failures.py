"""An evaluation's failed examples in a few lines: their reasons grouped and counted
(:func:`failure_reasons`) and said in one sentence (:func:`format_failures`)."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

#: How many distinct failure reasons :func:`failure_reasons` lists before "N other reasons".
MAX_FAILURE_REASONS = 5


def failure_reasons(errors: Iterable[str | None], *, limit: int = MAX_FAILURE_REASONS) -> list[dict[str, Any]]:
    """Failed examples' reasons grouped: ``[{"reason": ..., "count": n}, ...]``, most frequent
    first (ties in the order first seen). Each reason is its first line with runs of
    whitespace made one space; reasons beyond the ``limit`` most frequent are counted
    together as one ``"N other reasons"`` entry. ``None`` (an answered example) is skipped."""
    counts: dict[str, int] = {}
    for e in errors:
        if e is None:
            continue
        text = " ".join(str(e).strip().splitlines()[0].split()) if str(e).strip() else ""
        # What differs from one request to the next (its id) and what every reason of a run
        # repeats (which model was asked) are left out, so equal causes group together.
        text = re.sub(r"\s*\((?:x-)?request[ _-]id:? [^)]*\)", "", text, flags=re.IGNORECASE)
        text = re.sub(r"^(?:\S+ rejected )?chat with \S+: ", "", text)
        text = text or "no reason recorded"
        counts[text] = counts.get(text, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: first seen first among ties
    out = [{"reason": r, "count": n} for r, n in ranked[:limit]]
    rest = ranked[limit:]
    if rest:
        out.append({"reason": f"{len(rest)} other reason{'' if len(rest) == 1 else 's'}",
                    "count": sum(n for _, n in rest)})
    return out


def format_failures(failures: Sequence[Mapping[str, Any]] | None, failed: int | None = None) -> str:
    """``"38 failed: 30 x read timeout after 60 s; 8 x HTTP 400: ..."`` from :func:`failure_reasons`'
    groups (``failed``: the total, default their sum)."""
    groups = list(failures or [])
    total = sum(int(g.get("count") or 0) for g in groups) if failed is None else int(failed)
    if not groups:
        return f"{total} failed"
    return f"{total} failed: " + "; ".join(f"{int(g.get('count') or 0)} x {g.get('reason')}" for g in groups)
