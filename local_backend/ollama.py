"""The Ollama side of an export: a Modelfile whose TEMPLATE says what the model's chat template says.

Ollama renders prompts with Go's ``text/template``, not Jinja, so the chat template cannot be
copied: it is *measured*. :func:`chat_shape` renders the tokenizer's own chat template on probe
conversations whose contents are unique markers, and reads off the text around each message
(the prefix and suffix of each role, the text before the first message, the block a template
adds when the conversation has no system message, the generation prompt). The shape is then
checked against the chat template on a set of conversations (system or not, one turn or
several, contents with quotes, braces and new lines); a template whose output is not of this
shape (one that moves the system prompt into the first user turn, for instance) is refused
with the reason, never translated approximately.

:func:`go_template` writes the shape as a Go template over Ollama's ``.Messages``; literal text
is written as quoted Go strings, so no whitespace-trimming marker can eat a new line of the
prompt. Ollama puts the Modelfile's ``SYSTEM`` in front of a conversation that has no system
message of its own, which is what :func:`modelfile` uses for a training set with one constant
system prompt. The last assistant message is left open (no end-of-turn text), as Ollama's own
templates do, so that Ollama continues it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ftclient.errors import UsageError

__all__ = ["ChatShape", "chat_shape", "go_template", "modelfile", "create_command", "stop_words", "render_shape"]

Render = Callable[[Sequence[Mapping[str, str]], bool], str]
ROLES = ("system", "user", "assistant")

# Probe contents: unique, and free of characters a template might escape or trim.
_S, _U1, _A1, _U2 = "FTCPROBESYSTEMQ7", "FTCPROBEUSERONEQ7", "FTCPROBEASSISTANTQ7", "FTCPROBEUSERTWOQ7"
# What the checks send: awkward but ordinary contents (quotes, braces, backslashes, new lines).
_AWKWARD = ['my card "4921" {{ was }} declined\nwhy?', "a\\b {% raw %} 'x'", "Å ü 中文 — ok\n\nthanks"]


@dataclass(frozen=True)
class ChatShape:
    """A chat template measured as text around messages: ``head`` (before the first message,
    e.g. a BOS string), ``default`` (after ``head`` when the first message is not a system
    one: a default system prompt), ``prefix``/``suffix`` per role, ``generation`` (the
    assistant's opening after the last message)."""

    head: str
    default: str
    prefix: Mapping[str, str]
    suffix: Mapping[str, str]
    generation: str
    warnings: tuple[str, ...] = field(default=())


def render_shape(shape: ChatShape, messages: Sequence[Mapping[str, str]], *, head: bool = True) -> str:
    """The prompt ``shape`` gives ``messages`` (what the Go template renders in Ollama)."""
    out = [shape.head if head else ""]
    for i, m in enumerate(messages):
        role, last = m["role"], i == len(messages) - 1
        if i == 0 and role != "system":
            out.append(shape.default)
        if role in shape.prefix:
            out += [shape.prefix[role], m["content"]]
            if not (last and role == "assistant"):
                out.append(shape.suffix[role])
        if last and role != "assistant":
            out.append(shape.generation)
    return "".join(out)


def _split(text: str, marker: str) -> tuple[str, str]:
    i = text.find(marker)
    if i < 0 or text.find(marker, i + 1) >= 0:
        raise _NotShaped(f"the probe text {marker!r} is not in the rendered prompt exactly once")
    return text[:i], text[i + len(marker):]


def _after(text: str, start: str) -> str:
    if not text.startswith(start):
        raise _NotShaped("a longer conversation does not start with the prompt of the shorter one")
    return text[len(start):]


def _before(text: str, end: str) -> str:
    if not text.endswith(end):
        raise _NotShaped("the text between two messages does not end with the next message's prefix")
    return text[: len(text) - len(end)]


class _NotShaped(Exception):
    pass


def _probes() -> list[list[dict[str, str]]]:
    s, u, a = ({"role": r, "content": c} for r, c in zip(ROLES, _AWKWARD))
    u2 = {"role": "user", "content": "and now?"}
    return [[u], [s, u], [u, a, u2], [s, u, a, u2], [s, u, a, u2, {"role": "assistant", "content": "ok"}, u]]


def chat_shape(render: Render, *, bos_token: str | None = None) -> ChatShape:
    """Measure the chat template ``render(messages, add_generation_prompt)`` and check the
    measurement on the probe conversations; UsageError when the template is not of that shape."""

    def r(msgs: list[tuple[str, str]], gen: bool = False) -> str:
        try:
            return render([{"role": role, "content": c} for role, c in msgs], gen)
        except Exception as e:  # the template's own raise_exception, or a Jinja error
            raise _NotShaped(f"it refuses the conversation {[role for role, _ in msgs]}: {e}") from None

    try:
        u1 = r([("user", _U1)])
        uau = r([("user", _U1), ("assistant", _A1), ("user", _U2)])
        ua = r([("user", _U1), ("assistant", _A1)])
        su = r([("system", _S), ("user", _U1)])
        # suffixes: what follows the last message when there is no generation prompt
        suffix = {"user": _split(uau, _U2)[1], "assistant": _split(ua, _A1)[1]}
        head_u, _ = _split(uau, _U1)
        u_to_a, rest = _split(_split(uau, _U1)[1], _A1)
        a_to_u, _ = _split(rest, _U2)
        prefix = {"assistant": _after(u_to_a, suffix["user"]), "user": _after(a_to_u, suffix["assistant"])}
        head_s, s_rest = _split(su, _S)
        suffix["system"] = _before(_split(s_rest, _U1)[0], prefix["user"])
        generation = _after(r([("user", _U1)], True), u1)
        head_default = _before(head_u, prefix["user"])
        # BOS text in front of the prompt, unless that token also opens each message (ChatML
        # tokenizers that name <|im_start|> their BOS): then it belongs to the messages
        head = bos_token if (bos_token and head_default.startswith(bos_token) and head_s.startswith(bos_token)
                             and not prefix["user"].startswith(bos_token)) else ""
        prefix["system"] = head_s[len(head):]
        shape = ChatShape(head=head, default=head_default[len(head):], prefix=prefix, suffix=suffix,
                          generation=generation)
        for msgs in _probes():
            want = r([(m["role"], m["content"]) for m in msgs], True)
            if render_shape(shape, msgs) != want:
                raise _NotShaped(f"the measured shape gives another prompt for the conversation "
                                 f"{[m['role'] for m in msgs]}")
    except _NotShaped as e:
        raise UsageError(f"the model's chat template cannot be written as an Ollama TEMPLATE: {e}",
                         hint="Export --format gguf (the file carries the chat template, which Ollama matches "
                              "against the templates it knows) and write the Modelfile's TEMPLATE by hand.") from None
    warnings = []
    padded = [{"role": "user", "content": "  spaced out \n"}]
    if render_shape(shape, padded) != render(padded, True):
        warnings.append("the chat template strips spaces around message contents and the Ollama template cannot: "
                        "send contents without leading or trailing spaces for identical prompts")
    return ChatShape(shape.head, shape.default, shape.prefix, shape.suffix, shape.generation, tuple(warnings))


def _go_string(text: str) -> str:
    """``text`` as a Go interpreted string literal of printable ASCII (the Modelfile parser
    drops characters that are not printable, and keeps backslashes as they are)."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _lit(text: str) -> str:
    return "{{ " + _go_string(text) + " }}" if text else ""


def go_template(shape: ChatShape, *, add_bos: bool = False) -> str:
    """The Modelfile TEMPLATE for ``shape``. ``add_bos``: the runtime puts the BOS token in front
    of every prompt (the GGUF says so), so a ``head`` that is the BOS text is left out."""
    head = "" if add_bos else shape.head
    roles = [("if" if i == 0 else "else if", role) for i, role in enumerate(ROLES)]
    lines = ["{{- /* Written by ftc from the model's chat template; literal text is quoted. */ -}}"]
    if head:
        lines.append(_lit(head))
    lines += ["{{- range $i, $m := .Messages }}",
              "{{- $last := eq (len (slice $.Messages $i)) 1 }}"]
    if shape.default:
        lines.append('{{- if and (eq $i 0) (ne $m.Role "system") }}' + _lit(shape.default) + "{{ end }}")
    for word, role in roles:
        close = _lit(shape.suffix[role])
        if role == "assistant" and close:
            close = "{{ if not $last }}" + close + "{{ end }}"
        lines.append(f'{{{{- {word} eq $m.Role "{role}" }}}}' + _lit(shape.prefix[role]) + "{{ $m.Content }}" + close)
    lines.append("{{- end }}")
    if shape.generation:
        lines.append('{{- if and $last (ne $m.Role "assistant") }}' + _lit(shape.generation) + "{{ end }}")
    lines.append("{{- end }}")
    return "\n".join(lines)


def stop_words(shape: ChatShape, tokenizer: Any, eos_ids: Sequence[int] = ()) -> list[str]:
    """The end-of-turn strings: the special tokens in the assistant's suffix, the EOS token and
    the generation config's EOS ids, in that order, each once."""
    special = [t for t in (getattr(tokenizer, "all_special_tokens", None) or []) if t]
    special += [t.content for t in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values()
                if getattr(t, "special", False)]
    words = sorted({t for t in special if t in shape.suffix["assistant"]}, key=shape.suffix["assistant"].find)
    for tid in [getattr(tokenizer, "eos_token_id", None), *eos_ids]:
        if isinstance(tid, int) and tid >= 0:
            words.append(tokenizer.convert_ids_to_tokens(tid))
    seen: list[str] = []
    for w in words:
        if w and w not in seen:
            seen.append(w)
    return seen


def _triple_quotable(text: str) -> bool:
    return '"""' not in text and all(c.isprintable() or c in "\n\t" for c in text)


def modelfile(gguf_name: str, template: str, *, stops: Sequence[str] = (), system: str | None = None,
              name: str = "") -> tuple[str, list[str]]:
    """The Modelfile text for the GGUF file ``gguf_name`` beside it, and its warnings."""
    warnings: list[str] = []
    lines = [f"# Ollama Modelfile for {name or gguf_name}, written by ftc.",
             f"# Create the model: ollama create {name or 'NAME'} -f Modelfile", "",
             f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""', ""]
    for s in stops:
        if '"' in s or not s.isprintable():
            warnings.append(f"left out the stop word {s!r}: a Modelfile cannot quote it")
            continue
        lines.append(f'PARAMETER stop "{s}"')
    if system:
        if _triple_quotable(system):
            lines += ["", f'SYSTEM """{system}"""']
        else:
            warnings.append("the training data's system prompt holds text a Modelfile cannot quote; "
                            "it was left out: send it as the first message")
    return "\n".join(lines) + "\n", warnings


def create_command(name: str) -> str:
    """The command that makes the export an Ollama model (run in the export's folder)."""
    return shlex.join(["ollama", "create", name, "-f", "Modelfile"])
