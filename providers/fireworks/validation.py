"""Fireworks' fine-tuning data rules.

Sources (Fireworks' documentation):

* "Supervised Fine-Tuning - Text", https://docs.fireworks.ai/fine-tuning/fine-tuning-models
  ("Prepare a dataset"): a ``.jsonl`` file, one JSON example per line; at least 3 and at most
  3 million examples per dataset; each example has a ``messages`` array whose messages carry a
  ``role`` (``system``, ``user`` or ``assistant``; a system message is optional and, when
  given, the first of the conversation) and a ``content`` (a string, or a list of
  OpenAI-style content parts, ``{"type": "text", "text": ...}``, the two forms mixed freely);
  an optional per-message ``weight`` of 0 or 1 (0: the message is not trained on); an optional
  sample ``weight`` at the root, any number, used as a loss multiplier, which, once used, every
  example of the dataset must have; function-calling data with a ``tools`` list and assistant
  ``tool_calls`` (the page's example has no ``content`` and no call ``id``); thinking traces
  in an assistant's ``reasoning_content``. Its "Vision training" part: image parts
  (``image_url``) are base64 data URIs with a MIME type, plain HTTP(S) image URLs are not
  supported. Its "Max Context Length" setting: an example longer than the job's context length
  is cut off there (truncated, not refused). The page also says that data formatted for
  OpenAI's fine-tuning works on Fireworks unchanged.
* "Direct Preference Optimization", https://docs.fireworks.ai/fine-tuning/dpo-fine-tuning: the
  same 3 / 3 million limits and JSONL; each example has ``input`` (with a ``messages`` array of
  ``system`` / ``user`` / ``assistant`` messages with string ``content``; the example also
  carries ``input.tools``), ``preferred_output`` and ``non_preferred_output`` (each a list
  holding one assistant message); only one-turn conversations are supported, the preferred and
  non-preferred messages being the last assistant message.
* "Fine-tuning via API", https://docs.fireworks.ai/fine-tuning/fine-tuning-via-api: a JSONL
  file, each line a valid JSON object. The ``fireworks-ai`` SDK's dataset upload helper
  (``fireworks.lib.dataset_upload``) refuses a file that does not end in ``.jsonl``; the
  managed loaders find only the lowercase extension.

Where the pages are silent, ftc chose, and says so here:

* A ``tool`` message (a tool's result, as in OpenAI's format, which the page says works
  unchanged) is accepted in SFT examples, with or without ``tool_call_id``; ``developer`` and
  ``function`` roles are refused. DPO messages take the three documented roles only.
* At least one assistant message per SFT example (``no_assistant_turn``, as OpenAI and Together
  require); a warning when every assistant message has weight 0 (as for OpenAI). No turn order
  beyond "system first" (as OpenAI; Together's alternation rule is not Fireworks').
* Keys outside the documented schema (and outside OpenAI's, which Fireworks reads): a warning
  (``unknown_key``), as for Together: nothing says Fireworks refuses them.
* Empty or blank content: a warning (as for Together).
* Content parts in DPO messages: refused (``invalid_content``): the DPO page documents string
  content only.
* Sample weight: "present in all samples" is checked against the file's first SFT example.
* A line may be up to 64 MiB (ftc's choice: vision lines hold base64 images, whose size
  Fireworks does not bound); a UTF-8 byte-order mark is a warning (as for OpenAI).

Every code is listed in docs/validation.md.
"""

from __future__ import annotations

import math
from operator import itemgetter
from pathlib import Path
from typing import Any

from ftclient.validation.common import (
    DataChecker,
    Findings,
    TokenSetup,
    check_function_call,
    check_tools,
    hosted_token_setup,
    learn_sequence,
    short,
    type_name,
)

_get_role = itemgetter("role")

MIN_EXAMPLES = 3
MAX_EXAMPLES = 3_000_000

SFT_ROLES = ("system", "user", "assistant", "tool")
DPO_ROLES = ("system", "user", "assistant")
_SFT_ROLE_SET = frozenset(SFT_ROLES)
_DPO_ROLE_SET = frozenset(DPO_ROLES)
# Fireworks' documented keys, and OpenAI's (Fireworks reads OpenAI-formatted data unchanged).
SFT_KEYS = frozenset({"messages", "tools", "weight", "parallel_tool_calls"})
PREF_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
PREF_INPUT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
MESSAGE_KEYS = frozenset({"role", "content", "weight", "name", "tool_calls", "tool_call_id", "reasoning_content"})
PART_TYPES = frozenset({"text", "image_url"})
IMAGE_RULE = (
    "Fireworks takes images only as base64 data URIs with a MIME type (data:image/jpeg;base64,...); "
    "download the image and encode it"
)


def _finite_number(v: Any) -> bool:
    """An int or a finite float (not a boolean: JSON's true is no weight)."""
    t = type(v)
    return t is int or (t is float and math.isfinite(v))


FORMATS_FOR_METHOD = {
    "sft": frozenset({"conversation"}),
    "dpo": frozenset({"preference"}),
}


def _plain_sequence_ok(roles: tuple) -> bool:
    """The fast path's verdict on a role sequence: system, user and assistant only, a system
    message only first, at least one assistant message (such a line has no finding)."""
    n_assistant = 0
    for i, r in enumerate(roles):
        if r == "assistant":
            n_assistant += 1
        elif r == "user":
            continue
        elif r != "system" or i:
            return False
    return n_assistant > 0


_SEQUENCES: dict[tuple, bool] = {}


def _is_image_data_uri(url: str) -> bool:
    head = url[:128]
    return head.startswith("data:image/") and ";base64," in head


class FireworksChecker(DataChecker):
    provider = "fireworks"
    display = "Fireworks"
    min_examples = MIN_EXAMPLES
    max_examples = MAX_EXAMPLES
    formats_for_method = FORMATS_FOR_METHOD
    max_line_bytes = 64 * 1024 * 1024

    def __init__(self, model: str | None, method: str | None):
        self.model = model
        self.method = method
        # Whether the file's first SFT example has a sample weight (None before one is seen).
        # Kept on the checker, so the workers of a parallel scan inherit what the engine's
        # look at the head of the file (before the split) found.
        self._sample_weight: bool | None = None

    # -- the file and its tokens ----------------------------------------------------------

    def file_rules(self, path: Path, size: int, F: Findings) -> None:
        suffix = path.suffix
        if suffix.lower() != ".jsonl":
            F.error(0, "bad_extension", f"Fireworks takes .jsonl training files; this one is '{suffix or 'no extension'}': rename it")
        elif suffix != ".jsonl":
            F.warning(0, "bad_extension", f"'{suffix}': Fireworks' managed training finds only the lowercase .jsonl extension; rename it")

    def token_setup(self, max_seq_len: int | None, notes: list[str]) -> TokenSetup | None:
        # "Training examples will be cut-off at" the job's max context length (the SFT page,
        # "Max Context Length"): a long example is truncated, the file is not refused.
        return hosted_token_setup("fireworks", self.model, max_seq_len, notes, truncates="Fireworks")

    # -- one record ---------------------------------------------------------------------

    def check(self, rec: dict, ln: int, F: Findings) -> str | None:
        # Fast path (common.plain_conversation_ok, inlined: the hot loop): {"messages": [...]}
        # alone, or with a numeric sample weight, of {"role", "content"} messages with a
        # known-good role sequence and non-blank string contents, the sample weight as the
        # file's. Anything else: the full rules.
        msgs = rec.get("messages")
        if type(msgs) is list:
            n = len(rec)
            sw = self._sample_weight
            if (n == 1 and sw is not True) or (n == 2 and sw is not False and _finite_number(rec.get("weight"))):
                try:
                    ok = _SEQUENCES[tuple(map(_get_role, msgs))]
                except (KeyError, TypeError):
                    ok = learn_sequence(msgs, _SEQUENCES, _plain_sequence_ok)
                if ok:
                    for m in msgs:
                        c = m.get("content")
                        if type(c) is not str or len(m) != 2 or not c.strip():
                            break
                    else:
                        if sw is None:
                            self._sample_weight = n == 2
                        return "conversation"
        err = F.error
        if "messages" in rec:
            if not PREF_KEYS.isdisjoint(rec):
                err(ln, "ambiguous_format", "has both 'messages' (SFT) and preference keys (input/preferred_output/…); keep the fields of one")
                return None
            self._conversation(rec, ln, F)
            return "conversation"
        if not PREF_KEYS.isdisjoint(rec):
            self._preference(rec, ln, F)
            return "preference"
        keys = ", ".join(sorted(map(str, rec))) or "none"
        if self.method == "dpo":
            err(ln, "missing_field", f"a DPO example needs 'input', 'preferred_output' and 'non_preferred_output' (keys: {keys})")
        else:
            err(ln, "missing_messages", f"no 'messages' list (keys: {keys})")
        return None

    # -- SFT ------------------------------------------------------------------------------

    def _conversation(self, rec: dict, ln: int, F: Findings) -> None:
        err = F.error
        if not (rec.keys() <= SFT_KEYS):
            for k in rec:
                if k not in SFT_KEYS:
                    F.warning(ln, "unknown_key", f"field '{k}' is not part of Fireworks' SFT format and is ignored")
        has_weight = "weight" in rec
        if has_weight:
            w = rec["weight"]
            if not _finite_number(w):
                err(ln, "invalid_weight", f"the sample 'weight' must be a number (a loss multiplier), got {short(w)}")
        sw = self._sample_weight
        if sw is None:
            self._sample_weight = has_weight
        elif sw is not has_weight:
            if has_weight:
                msg = "a sample 'weight', but the file's first example has none"
            else:
                msg = "no sample 'weight', but the file's first example has one"
            err(ln, "inconsistent_sample_weight", msg + "; Fireworks needs it on every example or on none")
        if "tools" in rec:
            check_tools(rec["tools"], ln, err)
        if "parallel_tool_calls" in rec and not isinstance(rec["parallel_tool_calls"], bool):
            err(ln, "bad_tool", "parallel_tool_calls must be true or false")
        self._messages(rec["messages"], "messages", ln, F, sft=True)

    # -- messages -------------------------------------------------------------------------

    def _messages(self, msgs: Any, where: str, ln: int, F: Findings, *, sft: bool, output: bool = False) -> list:
        """Check a list of messages; returns their valid roles, in order. ``sft``: an SFT
        example's ``messages`` (content parts, the tool role, an assistant message needed);
        else a DPO ``input.messages`` or, with ``output``, a preferred / non-preferred output."""
        err = F.error
        if type(msgs) is not list:
            err(ln, "invalid_messages", f"'{where}' must be a list of messages, got {type_name(msgs)}")
            return []
        if not msgs:
            err(ln, "invalid_messages", f"'{where}' must not be empty")
            return []
        role_set, roles_text = (_SFT_ROLE_SET, SFT_ROLES) if sft else (_DPO_ROLE_SET, DPO_ROLES)
        roles: list[str] = []
        n_assistant = n_trained = 0
        for i, m in enumerate(msgs):
            w = f"{where}[{i}]"
            if type(m) is not dict:
                err(ln, "invalid_message", f"{w} must be an object, got {type_name(m)}")
                continue
            role = m.get("role")
            if type(role) is not str or role not in role_set:
                if role is None:
                    err(ln, "missing_role", f"{w} has no 'role'")
                else:
                    err(ln, "invalid_role", f"{w}.role {short(role)} is not one of {', '.join(roles_text)}")
                continue
            roles.append(role)
            if role == "system" and i and not output:
                err(ln, "bad_turn_order", f"{w} is a system message; Fireworks takes a system message only as the first")
            if not (m.keys() <= MESSAGE_KEYS):
                for k in m:
                    if k not in MESSAGE_KEYS:
                        F.warning(ln, "unknown_key", f"{w} has an unrecognised field '{k}', which is ignored")
            calls = m.get("tool_calls")
            if calls is not None:
                if role != "assistant":
                    err(ln, "bad_tool_call", f"{w}: only assistant messages have tool_calls")
                else:
                    self._tool_calls(calls, w, ln, err)
            if "weight" in m:
                wt = m["weight"]
                if type(wt) is not int or wt not in (0, 1):
                    err(ln, "invalid_weight", f"{w}.weight must be 0 or 1, got {short(wt)}")
                    wt = 1  # said already; no second warning
            else:
                wt = 1
            if role == "assistant":
                n_assistant += 1
                n_trained += wt != 0
                if "reasoning_content" in m and type(m["reasoning_content"]) is not str:
                    err(ln, "invalid_content", f"{w}.reasoning_content must be a string, got {type_name(m['reasoning_content'])}")
            elif "reasoning_content" in m:
                F.warning(ln, "unknown_key", f"{w} ({role}) has 'reasoning_content', which Fireworks reads only on assistant messages")
            if role == "tool" and "tool_call_id" in m and (type(m["tool_call_id"]) is not str or not m["tool_call_id"]):
                err(ln, "bad_tool_call", f"{w}.tool_call_id must be a non-empty string")
            if "name" in m and type(m["name"]) is not str:
                err(ln, "invalid_name", f"{w}.name must be a string, got {type_name(m['name'])}")
            content = m.get("content")
            if type(content) is str:
                if not content or content.isspace():
                    if not (role == "assistant" and calls):
                        F.warning(ln, "empty_content", f"{w} ({role}) content is empty")
            elif content is None:
                if not (role == "assistant" and calls):
                    err(ln, "missing_content", f"{w} ({role}) has no 'content'" + (" and no tool_calls" if role == "assistant" else ""))
            elif type(content) is list:
                if sft:
                    self._parts(content, w + ".content", ln, F)
                else:
                    err(ln, "invalid_content", f"{w}.content is a list of parts; Fireworks' DPO format takes string content")
            else:
                err(ln, "invalid_content", f"{w}.content must be a string or a list of content parts, got {type_name(content)}")
        if sft:
            if n_assistant == 0:
                err(ln, "no_assistant_turn", "no assistant message: nothing to train on")
            elif n_trained == 0:
                F.warning(ln, "no_trained_turn", "every assistant message has weight 0: nothing is trained")
        return roles

    @staticmethod
    def _parts(parts: list, w: str, ln: int, F: Findings) -> None:
        """OpenAI-style content parts: ``text`` parts, and ``image_url`` parts (vision)."""
        err = F.error
        if not parts:
            F.warning(ln, "empty_content", f"{w} is an empty list")
            return
        for j, part in enumerate(parts):
            pw = f"{w}[{j}]"
            if type(part) is not dict or part.get("type") not in PART_TYPES:
                got = short(part.get("type")) if type(part) is dict else type_name(part)
                err(ln, "invalid_content", f"{pw} must be a text or image_url part, got {got}")
                continue
            if part["type"] == "text":
                if type(part.get("text")) is not str:
                    err(ln, "invalid_content", f"{pw}.text must be a string, got {type_name(part.get('text'))}")
                continue
            img = part.get("image_url")
            url = img.get("url") if type(img) is dict else None
            if type(img) is not dict:
                err(ln, "invalid_content", f"{pw}.image_url must be an object with a 'url'")
            elif type(url) is not str or not url:
                err(ln, "invalid_content", f"{pw}.image_url.url must be a non-empty string")
            elif not _is_image_data_uri(url):
                err(ln, "bad_image", f"{pw}.image_url.url is {short(url, 60)}; {IMAGE_RULE}")

    @staticmethod
    def _tool_calls(calls: Any, w: str, ln: int, err) -> None:
        """An assistant's ``tool_calls``: ``[{"type": "function", "function": {"name",
        "arguments": a JSON string}}]``; the ``id`` may be left out (Fireworks' example has
        none), ``type`` too."""
        if type(calls) is not list or not calls:
            err(ln, "bad_tool_call", f"{w}.tool_calls must be a non-empty list, got {type_name(calls)}")
            return
        for j, tc in enumerate(calls):
            cw = f"{w}.tool_calls[{j}]"
            if type(tc) is not dict:
                err(ln, "bad_tool_call", f"{cw} must be an object, got {type_name(tc)}")
                continue
            if tc.get("type", "function") != "function":
                err(ln, "bad_tool_call", f"{cw}.type must be 'function', got {short(tc.get('type'))}")
            if "id" in tc and (type(tc["id"]) is not str or not tc["id"]):
                err(ln, "bad_tool_call", f"{cw}.id must be a non-empty string")
            check_function_call(tc.get("function"), cw + ".function", ln, err)

    # -- DPO ------------------------------------------------------------------------------

    def _preference(self, rec: dict, ln: int, F: Findings) -> None:
        err = F.error
        if not (rec.keys() <= PREF_KEYS):
            for k in rec:
                if k not in PREF_KEYS:
                    F.warning(ln, "unknown_key", f"field '{k}' is not part of Fireworks' DPO format and is ignored")
        inp = rec.get("input")
        if inp is None:
            err(ln, "missing_field", "missing 'input' (an object with a 'messages' list)")
        elif type(inp) is not dict:
            err(ln, "invalid_field_type", f"'input' must be an object with 'messages', got {type_name(inp)}")
        else:
            if not (inp.keys() <= PREF_INPUT_KEYS):
                for k in inp:
                    if k not in PREF_INPUT_KEYS:
                        F.warning(ln, "unknown_key", f"field 'input.{k}' is not part of Fireworks' DPO format and is ignored")
            if "tools" in inp:
                check_tools(inp["tools"], ln, err, "input.tools")
            if "parallel_tool_calls" in inp and not isinstance(inp["parallel_tool_calls"], bool):
                err(ln, "bad_tool", "input.parallel_tool_calls must be true or false")
            if "messages" not in inp:
                err(ln, "missing_messages", "'input' has no 'messages' list")
            else:
                roles = self._messages(inp["messages"], "input.messages", ln, F, sft=False)
                if "assistant" in roles:
                    err(
                        ln,
                        "multi_turn_preference",
                        "input.messages holds an assistant message; Fireworks' DPO takes one-turn examples only: "
                        "the prompt (system, user), then the preferred and non-preferred outputs as the last assistant message",
                    )
                elif roles and roles[-1] != "user":
                    err(ln, "bad_turn_order", "input.messages must end with a user message, which the preferred and non-preferred outputs answer")
        for key in ("preferred_output", "non_preferred_output"):
            out = rec.get(key)
            if out is None:
                err(ln, "missing_field", f"missing '{key}' (a list with one assistant message)")
            elif type(out) is not list or len(out) != 1:
                n = len(out) if type(out) is list else type_name(out)
                err(ln, "bad_preference_output", f"'{key}' must be a list with exactly one assistant message, got {n}")
            elif type(out[0]) is not dict or out[0].get("role") != "assistant":
                role = out[0].get("role") if type(out[0]) is dict else type_name(out[0])
                err(ln, "bad_preference_output", f"'{key}[0]' must be an assistant message, got {short(role)}")
            else:
                self._messages(out, key, ln, F, sft=False, output=True)
