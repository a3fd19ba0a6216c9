"""Together's fine-tuning data rules.

Sources: Together's file checker in its Python SDK (``together.lib.utils.files.check_file``
and ``together.lib.constants``: MIN_SAMPLES, MAX_FILE_SIZE_GB, the required columns of
each dataset format, the extra ``tools`` column, the required ``role`` of a message and
the possible roles) and Together's data-preparation guide (conversational data needs
``role`` and ``content`` on each message, starts with ``system`` or ``user`` and then
alternates user/assistant; ``weight`` is 0 or 1; a line matching two formats is an
error; other fields are ignored). The SDK itself is not imported here: it is slow to
import. Every code is listed in docs/validation.md.
"""

from __future__ import annotations

from typing import Any

from operator import itemgetter

from .common import Findings, check_tool_calls, check_tools, learn_sequence, short, type_name

_get_role = itemgetter("role")

# together.lib.constants
MIN_SAMPLES = 1
MAX_FILE_SIZE_GB = 50.1
NUM_BYTES_IN_GB = 2**30
ROLES = ("system", "user", "assistant", "tool")
ROLE_SET = frozenset(ROLES)

# Together's dataset formats and their required columns (JSONL_REQUIRED_COLUMNS_MAP),
# under ftc's neutral names.
FORMAT_COLUMNS = {
    "text": ("text",),  # Together: general
    "conversation": ("messages",),
    "instruction": ("prompt", "completion"),
    "preference": ("input", "preferred_output", "non_preferred_output"),  # preference_openai
}
TOGETHER_NAMES = {"text": "general", "conversation": "conversation", "instruction": "instruction", "preference": "preference_openai"}
EXTRA_COLUMNS = {"text": (), "conversation": ("tools",), "instruction": (), "preference": ()}
_KNOWN_COLUMNS = {f: frozenset(FORMAT_COLUMNS[f] + EXTRA_COLUMNS[f]) for f in FORMAT_COLUMNS}
MESSAGE_KEYS = frozenset({"role", "content", "weight", "name", "tool_calls", "tool_call_id"})
CONTENT_PART_TYPES = frozenset({"text", "image_url"})

FORMATS_FOR_METHOD = {
    "sft": frozenset({"text", "conversation", "instruction"}),
    "dpo": frozenset({"preference"}),
}


def _role_sequence_ok(roles: tuple) -> bool:
    """Roles all known, starting with system or user, no role twice in a row (but tool),
    at least one assistant turn."""
    previous = None
    n_assistant = 0
    for r in roles:
        if type(r) is not str or r not in ROLE_SET:
            return False
        if previous is None and r not in ("system", "user"):
            return False
        if previous == r and r != "tool":
            return False
        if r == "assistant":
            n_assistant += 1
        previous = r
    return n_assistant > 0


_SEQUENCES: dict[tuple, bool] = {}


class TogetherChecker:
    provider = "together"
    min_examples = MIN_SAMPLES
    formats_for_method = FORMATS_FOR_METHOD

    def __init__(self, model: str | None, method: str | None):
        self.model = model
        self.method = method

    def check(self, rec: dict, ln: int, F: Findings) -> str | None:
        # Fast path (common.plain_conversation_ok, inlined: this is the hot loop of the
        # benchmark): only {"messages": [{"role", "content"}, ...]} with a known-good
        # role sequence and non-blank string contents. Anything else: the full rules.
        msgs = rec.get("messages")
        if type(msgs) is list and len(rec) == 1:
            try:
                ok = _SEQUENCES[tuple(map(_get_role, msgs))]
            except (KeyError, TypeError):
                ok = learn_sequence(msgs, _SEQUENCES, _role_sequence_ok)
            if ok:
                for m in msgs:
                    c = m.get("content")
                    if type(c) is not str or len(m) != 2 or not c.strip():
                        break
                else:
                    return "conversation"
        err = F.error
        if "messages" in rec and (len(rec) == 1 or rec.keys() <= _KNOWN_COLUMNS["conversation"]):
            if "tools" in rec:
                check_tools(rec["tools"], ln, err)
            self._messages(rec["messages"], "messages", ln, F, conversation=True)
            return "conversation"
        found = [f for f, cols in FORMAT_COLUMNS.items() if all(c in rec for c in cols)]
        if len(found) > 1:
            names = " and ".join(TOGETHER_NAMES[f] for f in found)
            err(ln, "ambiguous_format", f"the line matches more than one dataset format ({names}); keep the fields of one")
            return None
        if not found:
            partial = [f for f, cols in FORMAT_COLUMNS.items() if any(c in rec for c in cols)]
            if partial:
                f = partial[0]
                missing = [c for c in FORMAT_COLUMNS[f] if c not in rec]
                err(ln, "missing_field", f"{TOGETHER_NAMES[f]} format needs {', '.join(repr(c) for c in missing)} too")
                return f
            keys = ", ".join(sorted(map(str, rec))) or "none"
            err(
                ln,
                "unknown_format",
                f"no dataset format recognised (keys: {keys}); give 'messages', 'text', 'prompt'+'completion' "
                "or 'input'+'preferred_output'+'non_preferred_output'",
            )
            return None
        fmt = found[0]
        known = _KNOWN_COLUMNS[fmt]
        for k in rec:
            if k not in known:
                F.warning(ln, "unknown_key", f"field '{k}' is not part of the {TOGETHER_NAMES[fmt]} format and is ignored")
        if fmt == "text":
            self._string(rec, "text", ln, F)
        elif fmt == "instruction":
            self._string(rec, "prompt", ln, F)
            self._string(rec, "completion", ln, F)
        elif fmt == "conversation":
            if "tools" in rec:
                check_tools(rec["tools"], ln, err)
            self._messages(rec["messages"], "messages", ln, F, conversation=True)
        else:
            self._preference(rec, ln, F)
        return fmt

    @staticmethod
    def _string(rec: dict, key: str, ln: int, F: Findings) -> None:
        v = rec[key]
        if not isinstance(v, str):
            F.error(ln, "invalid_field_type", f"'{key}' must be a string, got {type_name(v)}")
        elif not v.strip():
            F.warning(ln, "empty_content", f"'{key}' is empty")

    def _messages(self, msgs: Any, where: str, ln: int, F: Findings, conversation: bool) -> None:
        err = F.error
        if type(msgs) is not list:
            err(ln, "invalid_messages", f"'{where}' must be a list of messages, got {type_name(msgs)}")
            return
        if not msgs:
            err(ln, "invalid_messages", f"'{where}' must not be empty")
            return
        previous = None
        n_assistant = 0
        for i, m in enumerate(msgs):
            if type(m) is not dict:
                err(ln, "invalid_message", f"{where}[{i}] must be an object, got {type_name(m)}")
                continue
            role = m.get("role")
            if type(role) is not str:
                if role is None:
                    err(ln, "missing_role", f"{where}[{i}] has no 'role'")
                else:
                    err(ln, "invalid_role", f"{where}[{i}].role must be a string, got {type_name(role)}")
                continue
            if role not in ROLE_SET:
                err(ln, "invalid_role", f"{where}[{i}].role {short(role)} is not one of {', '.join(ROLES)}")
                continue
            content = m.get("content")
            if type(content) is str:
                if not content or content.isspace():
                    if not (role == "assistant" and m.get("tool_calls")):
                        F.warning(ln, "empty_content", f"{where}[{i}] ({role}) content is empty")
            elif content is None:
                if not (role == "assistant" and m.get("tool_calls")):
                    err(ln, "missing_content", f"{where}[{i}] ({role}) has no 'content'")
            elif type(content) is list:
                self._parts(content, f"{where}[{i}]", ln, F)
            else:
                err(ln, "invalid_content", f"{where}[{i}].content must be a string, got {type_name(content)}")
            if len(m) > 2:
                if "weight" in m:
                    wt = m["weight"]
                    if type(wt) is not int or wt not in (0, 1):
                        err(ln, "invalid_weight", f"{where}[{i}].weight must be 0 or 1, got {short(wt)}")
                if "tool_calls" in m and m["tool_calls"] is not None:
                    if role != "assistant":
                        err(ln, "bad_tool_call", f"{where}[{i}]: only assistant messages have tool_calls")
                    else:
                        check_tool_calls(m["tool_calls"], f"{where}[{i}]", ln, err)
                if not (m.keys() <= MESSAGE_KEYS):
                    for k in m:
                        if k not in MESSAGE_KEYS:
                            F.warning(ln, "unknown_key", f"{where}[{i}] has an unrecognised field '{k}', which is ignored")
            if conversation:
                if previous is None and role not in ("system", "user"):
                    err(ln, "bad_turn_order", f"{where}[0] is {role}; a conversation starts with system or user")
                elif previous == role and role != "tool":
                    err(
                        ln,
                        "bad_turn_order",
                        f"{where}[{i}] repeats the role {role}; user and assistant turns must alternate",
                    )
            if role == "assistant":
                n_assistant += 1
            previous = role
        if conversation and n_assistant == 0:
            err(ln, "no_assistant_turn", "no assistant message: nothing to train on")

    @staticmethod
    def _parts(parts: list, w: str, ln: int, F: Findings) -> None:
        if not parts:
            F.error(ln, "invalid_content", f"{w}.content is an empty list")
            return
        for j, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("type") not in CONTENT_PART_TYPES:
                F.error(ln, "invalid_content", f"{w}.content[{j}] must be a text or image_url part")
            elif part["type"] == "text" and not isinstance(part.get("text"), str):
                F.error(ln, "invalid_content", f"{w}.content[{j}].text must be a string")
            elif part["type"] == "image_url" and not isinstance(part.get("image_url"), dict):
                F.error(ln, "invalid_content", f"{w}.content[{j}].image_url must be an object with a 'url'")

    def _preference(self, rec: dict, ln: int, F: Findings) -> None:
        err = F.error
        inp = rec["input"]
        if not isinstance(inp, dict):
            err(ln, "invalid_field_type", f"'input' must be an object, got {type_name(inp)}")
        elif "messages" not in inp:
            err(ln, "missing_messages", "'input' must contain a 'messages' list")
        else:
            self._messages(inp["messages"], "input.messages", ln, F, conversation=False)
        for key in ("preferred_output", "non_preferred_output"):
            out = rec[key]
            if not isinstance(out, list):
                err(ln, "bad_preference_output", f"'{key}' must be a list, got {type_name(out)}")
            elif len(out) != 1:
                err(ln, "bad_preference_output", f"'{key}' must contain exactly one message, got {len(out)}")
            elif not isinstance(out[0], dict) or "role" not in out[0]:
                err(ln, "bad_preference_output", f"'{key}[0]' must be a message with a 'role'")
            elif out[0]["role"] != "assistant":
                err(ln, "bad_preference_output", f"'{key}[0]' must be an assistant message, got {short(out[0]['role'])}")
            else:
                self._messages(out, key, ln, F, conversation=False)
