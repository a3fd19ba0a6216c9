"""Together's fine-tuning data rules.

Sources: Together's file checker in its Python SDK (``together.lib.utils.files.check_file``
and ``together.lib.constants``: MIN_SAMPLES, MAX_FILE_SIZE_GB, the required columns of
each dataset format, the extra ``tools`` column, the required ``role`` of a message and
the possible roles, the multimodal limits) and Together's data-preparation guide
(conversational data needs ``role`` and ``content`` on each message, starts with
``system`` or ``user`` and then alternates user/assistant; ``weight`` is 0 or 1; a line
matching two formats is an error; other fields are ignored). Images follow Together's
vision fine-tuning guide and the SDK's previous full checker (1.5.x,
``together.utils.files._check_message_content``): conversational, instruction and
preference data may carry OpenAI-style content parts (``text`` / ``image_url``); images
are base64 data URLs with a MIME prefix (``data:image/png|jpeg|webp;base64,...``), at
most 10 MB each and 10 per example, only in user messages (or an instruction's
``prompt``); the messages of one example are all text or all content parts; a message
with images is not trained on (weight 0). The SDK itself is not imported here: it is
slow to import. Every code is listed in docs/validation.md.
"""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path
from typing import Any

from ftclient.validation.common import (
    DataChecker,
    Findings,
    TokenSetup,
    check_tool_calls,
    check_tools,
    hosted_token_setup,
    learn_sequence,
    short,
    type_name,
)

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
# Multimodal limits (together.lib.constants; the vision fine-tuning guide)
MAX_IMAGES_PER_EXAMPLE = 10
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_BASE64_IMAGE_LENGTH = len("data:image/jpeg;base64,") + 4 * MAX_IMAGE_BYTES // 3
IMAGE_PREFIXES = tuple(f"data:image/{f};base64," for f in ("jpeg", "png", "webp"))
IMAGE_RULE = (
    "Together takes images only as base64 data URLs with a MIME prefix "
    "(data:image/png;base64,..., also image/jpeg or image/webp): download the image and encode it"
)

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


class TogetherChecker(DataChecker):
    provider = "together"
    display = "Together"
    min_examples = MIN_SAMPLES
    formats_for_method = FORMATS_FOR_METHOD
    # A line may hold 10 base64 images of 10 MB each: more than ftc's usual 8 MiB per line.
    max_line_bytes = MAX_IMAGES_PER_EXAMPLE * MAX_BASE64_IMAGE_LENGTH + 8 * 1024 * 1024
    takes_parquet = True
    bom_is_error = True  # Together's JSON parser refuses a byte-order mark

    def __init__(self, model: str | None, method: str | None):
        self.model = model
        self.method = method

    def file_rules(self, path: Path, size: int, F: Findings) -> None:
        if path.suffix not in (".jsonl", ".parquet"):
            F.error(0, "bad_extension", f"Together takes .jsonl (or .parquet) training files; this one is '{path.suffix or 'no extension'}': rename it")
        if size > MAX_FILE_SIZE_GB * NUM_BYTES_IN_GB:
            F.error(0, "file_too_large", f"{size / NUM_BYTES_IN_GB:.1f} GB; Together's maximum is {MAX_FILE_SIZE_GB} GB")

    def token_setup(self, max_seq_len: int | None, notes: list[str]) -> TokenSetup | None:
        return hosted_token_setup("together", self.model, max_seq_len, notes)

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
            images = self._instruction_field(rec, "prompt", "user", ln, F)
            images += self._instruction_field(rec, "completion", "assistant", ln, F)
            if images > MAX_IMAGES_PER_EXAMPLE:
                F.error(ln, "bad_image", f"{images} images; Together takes at most {MAX_IMAGES_PER_EXAMPLE} per example")
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

    def _instruction_field(self, rec: dict, key: str, role: str, ln: int, F: Findings) -> int:
        """``prompt`` / ``completion``: a string or a list of content parts (the prompt
        as a user message, the completion as an assistant's). Returns its images."""
        v = rec[key]
        if type(v) is list:
            return self._parts(v, f"'{key}'", role, ln, F) or 0
        self._string(rec, key, ln, F)
        return 0

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
        n_parts = n_text = n_images = 0  # messages with content parts / string content; images
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
                n_text += 1
                if not content or content.isspace():
                    if not (role == "assistant" and m.get("tool_calls")):
                        F.warning(ln, "empty_content", f"{where}[{i}] ({role}) content is empty")
            elif content is None:
                if not (role == "assistant" and m.get("tool_calls")):
                    err(ln, "missing_content", f"{where}[{i}] ({role}) has no 'content'")
            elif type(content) is list:
                n_parts += 1
                images = self._parts(content, f"{where}[{i}].content", role, ln, F)
                if images:
                    n_images += images
                    wt = m.get("weight")
                    if type(wt) is int and wt != 0:
                        err(ln, "invalid_weight", f"{where}[{i}] has images and weight {wt}; Together trains on no message with images (weight 0 or none)")
            else:
                err(ln, "invalid_content", f"{where}[{i}].content must be a string or a list of content parts, got {type_name(content)}")
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
        if n_parts and n_text:
            err(
                ln,
                "invalid_content",
                f"'{where}' mixes string content and lists of content parts; Together needs all messages of an "
                'example in one form: write text-only ones as [{"type": "text", "text": ...}]',
            )
        if n_images > MAX_IMAGES_PER_EXAMPLE:
            err(ln, "bad_image", f"{n_images} images; Together takes at most {MAX_IMAGES_PER_EXAMPLE} per example")
        if conversation and n_assistant == 0:
            err(ln, "no_assistant_turn", "no assistant message: nothing to train on")

    @staticmethod
    def _parts(parts: list, w: str, role: str, ln: int, F: Findings) -> int:
        """Check a list of content parts (``w`` names it); returns its number of images."""
        err = F.error
        if not parts:
            F.warning(ln, "empty_content", f"{w} is an empty list")
            return 0
        images = 0
        for j, part in enumerate(parts):
            pw = f"{w}[{j}]"
            if not isinstance(part, dict) or part.get("type") not in CONTENT_PART_TYPES:
                got = short(part.get("type")) if isinstance(part, dict) else type_name(part)
                err(ln, "invalid_content", f"{pw} must be a text or image_url part, got {got}")
                continue
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    err(ln, "invalid_content", f"{pw}.text must be a string")
                continue
            images += 1
            if role != "user":
                err(ln, "bad_image", f"{pw}: an image in a {role} message; Together takes images only in user messages (and an instruction's prompt)")
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else None
            if not isinstance(img, dict):
                err(ln, "invalid_content", f"{pw}.image_url must be an object with a 'url'")
            elif not isinstance(url, str) or not url:
                err(ln, "invalid_content", f"{pw}.image_url.url must be a non-empty string")
            elif not url.startswith(IMAGE_PREFIXES):
                err(ln, "bad_image", f"{pw}.image_url.url is {short(url, 60)}; {IMAGE_RULE}")
            elif len(url) > MAX_BASE64_IMAGE_LENGTH:
                err(ln, "bad_image", f"{pw}: an image of about {len(url) * 3 // 4 / 2**20:.1f} MB; Together takes at most {MAX_IMAGE_BYTES // 2**20} MB per image")
        return images

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
