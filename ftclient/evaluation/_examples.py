"""The evaluation data: :func:`load_examples` reads ChatML JSONL into one :class:`Example`
per record (its prompt and its reference answer) and gives the file's sha256."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import DataError, UsageError


@dataclass(frozen=True)
class Example:
    """One evaluation example: ``messages`` (the prompt) and the ``reference`` answer."""

    idx: int
    key: str
    messages: list
    reference: str
    line: int = 0


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content)
    return str(content)


def load_examples(path: "str | Path", max_examples: int | None = None) -> tuple[list[Example], str]:
    """The examples of a ChatML JSONL file (the first ``max_examples``) and the file's sha256.

    A record is ``{"messages": [...]}`` with at least one assistant message that has a
    message before it; the last assistant message is the reference, the messages before
    it the prompt. Blank lines are skipped; anything else is a DataError naming the line.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such file", hint="Write eval.jsonl with `ftc data prepare ... --out-dir data/`.")
    raw = p.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    out: list[Example] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if max_examples is not None and len(out) >= max_examples:
            break
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise DataError(f"{p}: line {lineno}: not JSON ({e.msg})") from None
        msgs = rec.get("messages") if isinstance(rec, dict) else None
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise DataError(f"{p}: line {lineno}: not a chat example (no \"messages\" list)",
                            hint="Evaluation data is ChatML JSONL: {\"messages\": [..., {\"role\": \"assistant\", ...}]}.")
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if last is None or last == 0:
            raise DataError(f"{p}: line {lineno}: no assistant message after the prompt to compare with",
                            hint="Each record needs the expected answer as its last assistant message.")
        prompt = [{"role": str(m.get("role")), "content": _text(m.get("content"))} for m in msgs[:last]]
        reference = _text(msgs[last].get("content"))
        digest = hashlib.sha256(json.dumps([prompt, reference], ensure_ascii=False, sort_keys=True).encode()).hexdigest()
        key = digest[:16]
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n:
            key = f"{key}~{n}"  # the same example twice: two keys
        out.append(Example(idx=len(out), key=key, messages=prompt, reference=reference, line=lineno))
    if not out:
        raise DataError(f"{p}: no examples", hint="Write eval.jsonl with `ftc data prepare`.")
    return out, sha
