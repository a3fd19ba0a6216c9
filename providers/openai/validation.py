"""OpenAI's fine-tuning data rules.

Sources: the chat message schemas of OpenAI's OpenAPI document (ChatCompletionRequest*
Message, FineTuneChatCompletionRequestAssistantMessage with ``weight`` 0/1,
ChatCompletionMessageToolCall, ChatCompletionTool / FunctionObject), the fine-tuning
guide's chat and preference (DPO) input formats, and the checks of OpenAI's cookbook
"Data preparation and analysis for chat model fine-tuning" (data type, missing messages
list, missing or unrecognised message keys, unrecognised role, missing content, no
assistant message). Every code is listed in docs/validation.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftclient.errors import FtcError
from ftclient.validation.common import (
    DataChecker,
    Findings,
    TokenSetup,
    check_function_call,
    check_function_def,
    check_tool_calls,
    check_tools,
    closest,
    short,
    token_limit,
    type_name,
)

DEFAULT_MODEL = "gpt-4.1-mini"
MIN_EXAMPLES = 10
# Legacy completion models take {"prompt", "completion"} lines instead of messages.
COMPLETION_MODELS = ("babbage-002", "davinci-002")

ROLES = ("system", "user", "assistant", "tool", "function")
ROLE_SET = frozenset(ROLES)
MESSAGE_KEYS = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset(
        {"role", "content", "name", "weight", "tool_calls", "function_call", "refusal", "audio"}
    ),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
# What the unknown-key check lets through: ``weight`` on a non-assistant message is
# reported once, as invalid_weight, not a second time as an unknown key.
KEYS_NOT_UNKNOWN = {role: keys | {"weight"} for role, keys in MESSAGE_KEYS.items()}
# Content part types allowed per role (string content is always allowed).
PART_TYPES = {
    "system": frozenset({"text"}),
    "tool": frozenset({"text"}),
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
    "function": frozenset(),
}
PART_FIELD = {"text": "text", "refusal": "refusal", "image_url": "image_url", "input_audio": "input_audio", "file": "file"}

SFT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
PREF_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
PREF_INPUT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
COMPLETION_KEYS = frozenset({"prompt", "completion"})

FORMATS_FOR_METHOD = {
    "sft": frozenset({"conversation"}),
    "dpo": frozenset({"preference"}),
}


class OpenAIChecker(DataChecker):
    provider = "openai"
    display = "OpenAI"
    min_examples = MIN_EXAMPLES

    def __init__(self, model: str | None, method: str | None):
        self.model = model or DEFAULT_MODEL
        self.method = method
        legacy = any(self.model.endswith(m) or self.model.startswith(m) for m in COMPLETION_MODELS)
        self.formats_for_method = dict(FORMATS_FOR_METHOD)
        if legacy:
            self.formats_for_method["sft"] = frozenset({"instruction"})
        self.legacy = legacy

    # -- the file and its tokens ----------------------------------------------------------

    def file_rules(self, path: Path, size: int, F: Findings) -> None:
        if path.suffix != ".jsonl":
            F.warning(0, "bad_extension", f"OpenAI expects a .jsonl training file; this one is '{path.suffix or 'no extension'}'")

    def token_setup(self, max_seq_len: int | None, notes: list[str]) -> TokenSetup | None:
        from ftclient import tokens

        ref = f"openai:{self.model}"
        if self.legacy:
            notes.append(f"tokens not counted for the completion model {self.model}")
            return None
        try:
            counter = tokens.get_counter(ref)
        except FtcError as e:
            notes.append(f"tokens not counted: {e.message}")
            return None
        limit, source = token_limit(ref, max_seq_len, notes)
        # OpenAI's fine-tuning guide: "Examples longer than the default will be truncated to
        # the maximum context length which removes tokens from the end of the training
        # example(s)" - the file is not refused.
        return TokenSetup(counter, limit, source, truncates="OpenAI")

    # -- one record ---------------------------------------------------------------------

    def check(self, rec: dict, ln: int, F: Findings) -> str | None:
        err = F.error
        if "messages" in rec:
            if not PREF_KEYS.isdisjoint(rec):
                err(ln, "ambiguous_format", "has both 'messages' (chat) and preference keys (input/preferred_output/…)")
                return None
            if not (rec.keys() <= SFT_KEYS):
                self._unknown(rec, SFT_KEYS, "", ln, err)
            self._tools(rec, "", ln, err)
            self._messages(rec["messages"], "messages", ln, F, need_assistant=True)
            return "conversation"
        if not PREF_KEYS.isdisjoint(rec):
            self._preference(rec, ln, F)
            return "preference"
        if "prompt" in rec or "completion" in rec:
            if not self.legacy:
                err(
                    ln,
                    "wrong_format",
                    f"prompt/completion lines are only for {', '.join(COMPLETION_MODELS)}; "
                    f"{self.model} needs chat lines with a 'messages' list",
                )
                return "instruction"
            for k in ("prompt", "completion"):
                if k not in rec:
                    err(ln, "missing_field", f"missing '{k}'")
                elif not isinstance(rec[k], str):
                    err(ln, "invalid_field_type", f"'{k}' must be a string, got {type_name(rec[k])}")
            if isinstance(rec.get("completion"), str) and not rec["completion"].strip():
                err(ln, "empty_content", "'completion' is empty")
            if not (rec.keys() <= COMPLETION_KEYS):
                self._unknown(rec, COMPLETION_KEYS, "", ln, err)
            return "instruction"
        if self.method == "dpo":
            err(ln, "missing_field", "a preference example needs 'input', 'preferred_output' and 'non_preferred_output'")
        else:
            keys = ", ".join(sorted(map(str, rec))) or "none"
            err(ln, "missing_messages", f"no 'messages' list (keys: {keys})")
        return None

    # -- parts ---------------------------------------------------------------------------

    @staticmethod
    def _unknown(obj: dict, allowed, where: str, ln: int, err) -> None:
        for k in obj:
            if k not in allowed:
                err(ln, "unknown_key", f"unrecognised key '{where}{k}'{closest(k, allowed)}")

    @staticmethod
    def _tools(rec: dict, where: str, ln: int, err) -> None:
        if "tools" in rec:
            check_tools(rec["tools"], ln, err, where + "tools")
        if "functions" in rec:
            fns = rec["functions"]
            if not isinstance(fns, list):
                err(ln, "bad_tool", f"{where}functions must be a list, got {type_name(fns)}")
            else:
                for j, fn in enumerate(fns):
                    check_function_def(fn, f"{where}functions[{j}]", ln, err)
        if "parallel_tool_calls" in rec and not isinstance(rec["parallel_tool_calls"], bool):
            err(ln, "bad_tool", f"{where}parallel_tool_calls must be true or false")

    def _messages(self, msgs: Any, where: str, ln: int, F: Findings, need_assistant: bool) -> None:
        err = F.error
        if not isinstance(msgs, list):
            err(ln, "invalid_messages", f"'{where}' must be a list of messages, got {type_name(msgs)}")
            return
        if not msgs:
            err(ln, "invalid_messages", f"'{where}' is empty")
            return
        n_assistant = 0
        n_trained = 0
        call_ids: set[str] = set()
        for i, m in enumerate(msgs):
            w = f"{where}[{i}]"
            if type(m) is not dict:
                err(ln, "invalid_message", f"{w} must be an object, got {type_name(m)}")
                continue
            role = m.get("role")
            if type(role) is not str or role not in ROLE_SET:
                if role is None:
                    err(ln, "missing_role", f"{w} has no 'role'")
                else:
                    err(ln, "invalid_role", f"{w}.role {short(role)} is not one of {', '.join(ROLES)}")
                continue
            if not (m.keys() <= KEYS_NOT_UNKNOWN[role]):
                self._unknown(m, KEYS_NOT_UNKNOWN[role], w + ".", ln, err)
            content = m.get("content")
            if role == "assistant":
                n_assistant += 1
                has_call = "tool_calls" in m or "function_call" in m
                if "tool_calls" in m and m["tool_calls"] is not None:
                    call_ids.update(check_tool_calls(m["tool_calls"], w, ln, err))
                if "function_call" in m and m["function_call"] is not None:
                    check_function_call(m["function_call"], w + ".function_call", ln, err)
                if "weight" in m:
                    wt = m["weight"]
                    if type(wt) is not int or wt not in (0, 1):
                        err(ln, "invalid_weight", f"{w}.weight must be 0 or 1, got {short(wt)}")
                        n_trained += 1  # said already; no second warning
                    elif wt == 1:
                        n_trained += 1
                else:
                    n_trained += 1
                if content is None:
                    if not has_call and not m.get("refusal"):
                        err(ln, "missing_content", f"{w} (assistant) has no content and no tool_calls")
                    continue
            else:
                if "weight" in m:
                    err(ln, "invalid_weight", f"{w}.weight is only allowed on assistant messages, not {role}")
                if role == "tool":
                    tid = m.get("tool_call_id")
                    if not isinstance(tid, str) or not tid:
                        err(ln, "bad_tool_call", f"{w} (tool) needs a string 'tool_call_id'")
                    elif call_ids and tid not in call_ids:
                        F.warning(ln, "unmatched_tool_call", f"{w}.tool_call_id {short(tid)} matches no earlier tool call")
                elif role == "function" and not isinstance(m.get("name"), str):
                    err(ln, "invalid_name", f"{w} (function) needs a string 'name'")
                if content is None:
                    if role == "function" and "content" in m:
                        continue
                    err(ln, "missing_content", f"{w} ({role}) has no content")
                    continue
            if "name" in m and type(m["name"]) is not str:
                err(ln, "invalid_name", f"{w}.name must be a string, got {type_name(m['name'])}")
            if type(content) is str:
                if not content or content.isspace():
                    if not (role == "assistant" and ("tool_calls" in m or "function_call" in m)):
                        err(ln, "empty_content", f"{w} ({role}) content is empty")
            elif type(content) is list:
                self._parts(content, role, w, ln, err)
            else:
                err(ln, "invalid_content", f"{w}.content must be a string or a list of content parts, got {type_name(content)}")
        if need_assistant and n_assistant == 0:
            err(ln, "no_assistant_turn", "no assistant message: nothing to train on")
        elif need_assistant and n_trained == 0 and n_assistant:
            F.warning(ln, "no_trained_turn", "every assistant message has weight 0: nothing is trained")

    @staticmethod
    def _parts(parts: list, role: str, w: str, ln: int, err) -> None:
        if not parts:
            err(ln, "empty_content", f"{w}.content is an empty list")
            return
        allowed = PART_TYPES[role]
        for j, part in enumerate(parts):
            pw = f"{w}.content[{j}]"
            if not isinstance(part, dict):
                err(ln, "invalid_content", f"{pw} must be an object, got {type_name(part)}")
                continue
            t = part.get("type")
            if t not in allowed:
                err(ln, "invalid_content", f"{pw}.type {short(t)} is not allowed in {role} messages (allowed: {', '.join(sorted(allowed)) or 'none'})")
                continue
            field = PART_FIELD[t]
            v = part.get(field)
            if t in ("text", "refusal"):
                if not isinstance(v, str):
                    err(ln, "invalid_content", f"{pw}.{field} must be a string")
                elif not v.strip():
                    err(ln, "empty_content", f"{pw}.{field} is empty")
            elif t == "image_url":
                if not isinstance(v, dict) or not isinstance(v.get("url"), str) or not v["url"]:
                    err(ln, "invalid_content", f"{pw}.image_url needs a 'url' string")
            elif not isinstance(v, dict):
                err(ln, "invalid_content", f"{pw}.{field} must be an object")

    def _preference(self, rec: dict, ln: int, F: Findings) -> None:
        err = F.error
        if not (rec.keys() <= PREF_KEYS):
            self._unknown(rec, PREF_KEYS, "", ln, err)
        inp = rec.get("input")
        if inp is None:
            err(ln, "missing_field", "missing 'input' (an object with a 'messages' list)")
        elif not isinstance(inp, dict):
            err(ln, "invalid_field_type", f"'input' must be an object with 'messages', got {type_name(inp)}")
        else:
            if not (inp.keys() <= PREF_INPUT_KEYS):
                self._unknown(inp, PREF_INPUT_KEYS, "input.", ln, err)
            self._tools(inp, "input.", ln, err)
            if "messages" not in inp:
                err(ln, "missing_messages", "'input' has no 'messages' list")
            else:
                self._messages(inp["messages"], "input.messages", ln, F, need_assistant=False)
        for key in ("preferred_output", "non_preferred_output"):
            out = rec.get(key)
            if out is None:
                err(ln, "missing_field", f"missing '{key}' (a list with one assistant message)")
            elif not isinstance(out, list) or len(out) != 1:
                n = len(out) if isinstance(out, list) else type_name(out)
                err(ln, "bad_preference_output", f"'{key}' must be a list with exactly one assistant message, got {n}")
            elif not isinstance(out[0], dict) or out[0].get("role") != "assistant":
                role = out[0].get("role") if isinstance(out[0], dict) else type_name(out[0])
                err(ln, "bad_preference_output", f"'{key}[0]' must be an assistant message, got {short(role)}")
            else:
                self._messages(out, key, ln, F, need_assistant=False)
