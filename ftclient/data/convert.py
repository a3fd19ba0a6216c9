"""Turning one record of any supported schema into canonical ChatML.

Canonical records (what ``train.jsonl`` / ``eval.jsonl`` hold):

* SFT: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``,
  at most one system message (first), at least one user message, ending with an
  assistant turn.
* DPO: ``{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant",
  "content": str}], "non_preferred_output": [{"role": "assistant", "content": str}]}``
  (the OpenAI / Together preference format); ``input.messages`` ends with a user turn.

Every converter returns a :class:`Converted`: the record, or the reason it is unusable
(a short key such as ``"bad_role"`` that the report counts). Content is trimmed here;
an empty system message is dropped, any other empty message makes the record unusable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

SFT = "sft"
DPO = "dpo"

# Why a record was dropped; the keys of ``report["counts"]["dropped"]``.
REASONS = {
    "not_an_object": "the record is not a JSON object",
    "missing_field": "a field the format needs is missing or null",
    "bad_role": "a message has a role other than system/user/assistant (or a known alias)",
    "bad_content": "a message content is not text",
    "empty_content": "a user or assistant text is empty after trimming whitespace",
    "bad_structure": "no user turn, a system turn not first, or not ending with the assistant",
    "chosen_equals_rejected": "the preferred and rejected answers are the same",
    "exact_duplicate": "same text as an earlier record (after Unicode/case/whitespace normalisation)",
    "near_duplicate": "near-duplicate of an earlier record (MinHash Jaccard estimate >= threshold)",
}

ROLE_ALIASES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
}


class Unusable(Exception):
    """A record that cannot be converted; ``reason`` is a key of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Converted:
    record: dict | None
    reason: str | None = None
    detail: str = ""


def _text(value: Any, field: str) -> str:
    """Trimmed text of a field: strings as is, numbers as their text, text parts joined."""
    if value is None:
        raise Unusable("missing_field", f"{field} is missing")
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        raise Unusable("bad_content", f"{field} is a boolean")
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        # OpenAI content parts: [{"type": "text", "text": "..."}]
        texts = []
        for p in value:
            if p.get("type", "text") != "text" or not isinstance(p.get("text"), str):
                raise Unusable("bad_content", f"{field} has a non-text part")
            texts.append(p["text"])
        return "".join(texts).strip()
    raise Unusable("bad_content", f"{field} is a {type(value).__name__}, not text")


def _message(m: Any, *, role_key: str = "role", content_key: str = "content") -> dict:
    if not isinstance(m, dict):
        raise Unusable("bad_structure", "a message is not an object")
    raw_role = m.get(role_key)
    role = ROLE_ALIASES.get(raw_role.strip().lower()) if isinstance(raw_role, str) else None
    if role is None:
        raise Unusable("bad_role", f"role {raw_role!r}")
    if content_key not in m:
        raise Unusable("missing_field", f"message without {content_key!r}")
    return {"role": role, "content": _text(m.get(content_key), content_key)}


def _messages(value: Any, field: str, **kw: str) -> list[dict]:
    if value is None:
        raise Unusable("missing_field", f"{field} is missing")
    if isinstance(value, str):
        return [{"role": "user", "content": value.strip()}]
    if not isinstance(value, list):
        raise Unusable("bad_structure", f"{field} is not a list of messages")
    return [_message(m, **kw) for m in value]


def _clean(msgs: list[dict], system: str | None) -> list[dict]:
    """Drop empty system messages, refuse other empty ones, add ``system`` if none is there."""
    out = []
    for m in msgs:
        if not m["content"]:
            if m["role"] == "system":
                continue
            raise Unusable("empty_content", f"empty {m['role']} message")
        out.append(m)
    if system and not any(m["role"] == "system" for m in out):
        out.insert(0, {"role": "system", "content": system})
    return out


def _check_prompt(msgs: list[dict], *, ends_with: str | None) -> None:
    if any(m["role"] == "system" for m in msgs[1:]):
        raise Unusable("bad_structure", "a system message after the first turn")
    if not any(m["role"] == "user" for m in msgs):
        raise Unusable("bad_structure", "no user message")
    if ends_with and msgs[-1]["role"] != ends_with:
        raise Unusable("bad_structure", f"the conversation does not end with the {ends_with}")


def sft(msgs: list[dict], system: str | None) -> dict:
    msgs = _clean(msgs, system)
    if not msgs:
        raise Unusable("empty_content", "no messages")
    _check_prompt(msgs, ends_with="assistant")
    return {"messages": msgs}


def _one_answer(value: Any, field: str) -> dict:
    """A preferred/rejected answer: a string, a message, or a list with one assistant message."""
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        msgs = [_message(m) for m in value]
        if len(msgs) != 1 or msgs[0]["role"] != "assistant":
            raise Unusable("bad_structure", f"{field} must be one assistant message")
        content = msgs[0]["content"]
    else:
        content = _text(value, field)
    if not content:
        raise Unusable("empty_content", f"empty {field}")
    return {"role": "assistant", "content": content}


def dpo(prompt: list[dict], chosen: Any, rejected: Any, system: str | None) -> dict:
    prompt = _clean(prompt, system)
    if not prompt:
        raise Unusable("empty_content", "empty prompt")
    _check_prompt(prompt, ends_with="user")
    good = _one_answer(chosen, "chosen")
    bad = _one_answer(rejected, "rejected")
    if good["content"] == bad["content"]:
        raise Unusable("chosen_equals_rejected")
    return {"input": {"messages": prompt}, "preferred_output": [good], "non_preferred_output": [bad]}


# --- one converter per schema -------------------------------------------------------


def from_chatml(r: dict, system: str | None) -> dict:
    return sft(_messages(r.get("messages"), "messages"), system)


def from_prompt_completion(r: dict, system: str | None) -> dict:
    if "prompt" not in r or "completion" not in r:
        raise Unusable("missing_field", "needs prompt and completion")
    prompt = _messages(r["prompt"], "prompt")
    comp = r["completion"]
    if isinstance(comp, list):
        answer = [_message(m) for m in comp]
    else:
        answer = [{"role": "assistant", "content": _text(comp, "completion")}]
    return sft(prompt + answer, system)


def from_alpaca(r: dict, system: str | None) -> dict:
    if "instruction" not in r or "output" not in r:
        raise Unusable("missing_field", "needs instruction and output")
    instruction = _text(r.get("instruction"), "instruction")
    extra = _text(r.get("input") or "", "input")
    user = f"{instruction}\n\n{extra}" if instruction and extra else (instruction or extra)
    return sft([{"role": "user", "content": user}, {"role": "assistant", "content": _text(r["output"], "output")}], system)


def from_sharegpt(r: dict, system: str | None) -> dict:
    conv = r.get("conversations")
    if not isinstance(conv, list):
        raise Unusable("missing_field" if conv is None else "bad_structure", "conversations")
    msgs = []
    for m in conv:
        if isinstance(m, dict) and "from" in m:
            msgs.append(_message(m, role_key="from", content_key="value"))
        else:
            msgs.append(_message(m))
    if isinstance(r.get("system"), str) and r["system"].strip() and not any(m["role"] == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": r["system"].strip()})
    return sft(msgs, system)


def from_dpo(r: dict, system: str | None) -> dict:
    if "chosen" not in r or "rejected" not in r:
        raise Unusable("missing_field", "needs chosen and rejected")
    chosen, rejected = r["chosen"], r["rejected"]
    if r.get("prompt") is not None:
        prompt = _messages(r["prompt"], "prompt")
    elif isinstance(chosen, list) and isinstance(rejected, list):
        # Implicit prompt (TRL conversational): both are whole conversations that share a prefix.
        c = [_message(m) for m in chosen]
        j = [_message(m) for m in rejected]
        if len(c) < 2 or len(c) != len(j) or c[:-1] != j[:-1]:
            raise Unusable("bad_structure", "chosen and rejected do not share the prompt")
        prompt, chosen, rejected = c[:-1], [c[-1]], [j[-1]]
    else:
        raise Unusable("missing_field", "needs a prompt")
    if isinstance(r.get("system"), str) and r["system"].strip() and not any(m["role"] == "system" for m in prompt):
        prompt.insert(0, {"role": "system", "content": r["system"].strip()})
    return dpo(prompt, chosen, rejected, system)


def from_openai_preference(r: dict, system: str | None) -> dict:
    inp = r.get("input")
    if not isinstance(inp, dict) or "preferred_output" not in r or "non_preferred_output" not in r:
        raise Unusable("missing_field", "needs input.messages, preferred_output and non_preferred_output")
    return dpo(_messages(inp.get("messages"), "input.messages"), r["preferred_output"], r["non_preferred_output"], system)


def columns_converter(input_col: str, output_col: str) -> Callable[[dict, str | None], dict]:
    """Tabular rows (CSV/TSV, or flat JSON objects): one user turn and one assistant turn."""

    def convert(r: dict, system: str | None) -> dict:
        if r.get(input_col) is None or r.get(output_col) is None:
            raise Unusable("missing_field", f"no value in {input_col!r} or {output_col!r}")
        return sft(
            [{"role": "user", "content": _text(r[input_col], input_col)},
             {"role": "assistant", "content": _text(r[output_col], output_col)}],
            system,
        )

    return convert


def columns_dpo_converter(prompt_col: str) -> Callable[[dict, str | None], dict]:
    """Tabular preference rows: prompt, chosen and rejected columns."""

    def convert(r: dict, system: str | None) -> dict:
        if r.get(prompt_col) is None or r.get("chosen") is None or r.get("rejected") is None:
            raise Unusable("missing_field", f"no value in {prompt_col!r}, 'chosen' or 'rejected'")
        return dpo([{"role": "user", "content": _text(r[prompt_col], prompt_col)}], r["chosen"], r["rejected"], system)

    return convert


SCHEMAS: dict[str, tuple[str, Callable[[dict, str | None], dict], str]] = {
    # name: (kind, converter, description)
    "chatml": (SFT, from_chatml, 'ChatML {"messages": [...]}'),
    "prompt_completion": (SFT, from_prompt_completion, "prompt/completion"),
    "alpaca": (SFT, from_alpaca, "Alpaca instruction/input/output"),
    "sharegpt": (SFT, from_sharegpt, "ShareGPT conversations (from/value)"),
    "dpo": (DPO, from_dpo, "DPO preference pairs prompt/chosen/rejected"),
    "openai_preference": (DPO, from_openai_preference, "OpenAI preference (input/preferred_output/non_preferred_output)"),
}


def schema_of(r: Any) -> str | None:
    """The schema a single JSON record looks like, or None."""
    if not isinstance(r, dict):
        return None
    if "preferred_output" in r and "non_preferred_output" in r:
        return "openai_preference"
    if "chosen" in r and "rejected" in r:
        return "dpo"
    if isinstance(r.get("messages"), list):
        return "chatml"
    if isinstance(r.get("conversations"), list):
        return "sharegpt"
    if "instruction" in r and "output" in r:
        return "alpaca"
    if "prompt" in r and "completion" in r:
        return "prompt_completion"
    return None
