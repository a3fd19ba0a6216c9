"""The shapes of fine-tuning examples that ftclient counts.

Record shapes (canonical ChatML, as written by ``ftc data prepare``):

* SFT: ``{"messages": [{"role": ..., "content": ...}, ...]}``
* DPO: ``{"input": {"messages": [...]}, "preferred_output": [...],
  "non_preferred_output": [...]}`` -- counted as the input plus both outputs
  (the prompt once).
"""

from __future__ import annotations

from typing import Any


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

