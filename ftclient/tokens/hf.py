"""Exact token counts of open models with their own tokenizer and chat template, offline.

A model's tokenizer is found in a local folder or the Hugging Face cache
(:func:`tokenizer_dir`: the snapshot ``refs/main`` names, never the network). Its
``tokenizer.json`` is read with the ``tokenizers`` library and the template rendered with
jinja2 (:class:`LightTokenizer`: no transformers, no torch); transformers only for a
tokenizer without ``tokenizer.json``. :class:`HFCounter` counts with either; when neither
can be had, the counter is the labelled approximation (:class:`.ApproxCounter`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import DataError
from .approx import ApproxCounter
from .records import content_text, record_conversations

class HFCounter:
    """Exact counts with the model's own tokenizer and chat template (transformers).

    SFT: tokens of ``apply_chat_template(messages)``. DPO: the input once plus both
    output messages, i.e. n(input+preferred) + n(input+non_preferred) - n(input). Content-part lists are flattened to their text; ``weight`` is dropped.
    """

    exact = True

    def __init__(self, tokenizer, source: str):
        self.tok = tokenizer
        self.source = source
        self.basis = f"exact: the model's own tokenizer and chat template ({source}), via transformers, offline"

    @staticmethod
    def _clean(msgs: list) -> list[dict]:
        out = []
        for m in msgs:
            d = {k: v for k, v in m.items() if k != "weight"}
            if not isinstance(d.get("content"), str):
                d["content"] = content_text(d.get("content"))
            out.append(d)
        return out

    def _render(self, msgs: list, add_generation_prompt: bool = False) -> str:
        return self.tok.apply_chat_template(
            self._clean(msgs), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def count_split(self, records: Sequence[Any]):
        texts: list[str] = []
        plan: list[tuple[str, int]] = []
        for i, r in enumerate(records):
            try:
                msgs, pref, npref = record_conversations(r)
            except ValueError as e:
                raise DataError(f"example {i + 1}: {e}") from None
            if pref is None:
                last = len(msgs) - 1
                while last >= 0 and msgs[last].get("role") != "assistant":
                    last -= 1
                prompt_msgs = msgs[:last] if last >= 0 else msgs
                texts += [self._render(msgs), self._render(prompt_msgs, add_generation_prompt=True)]
                plan.append(("sft", 2))
            else:
                texts += [
                    self._render(msgs + pref),
                    self._render(msgs + npref),
                    self._render(msgs, add_generation_prompt=True),
                    self._render(msgs),
                ]
                plan.append(("dpo", 4))
        ids = self.tok(texts, add_special_tokens=False)["input_ids"] if texts else []
        lens = [len(x) for x in ids]
        total, prompt, completion = [], [], []
        k = 0
        for kind, n in plan:
            if kind == "sft":
                t, p = lens[k], lens[k + 1]
                total.append(t)
                prompt.append(p)
                completion.append(max(t - p, 0))
            else:
                a, b, p, plain = lens[k], lens[k + 1], lens[k + 2], lens[k + 3]
                total.append(a + b - plain)
                prompt.append(p)
                completion.append(max(a - p, 0))
            k += n
        return total, prompt, completion

    def count_records(self, records):
        return self.count_split(records)[0]

    def count_record(self, record):
        return self.count_records([record])[0]


# ------------------------------------------------------------------ torch-free tokenizer

def _token_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


class LightTokenizer:
    """A model's own tokenizer without transformers (and so without torch): ``tokenizer.json``
    through the ``tokenizers`` library, the chat template rendered with jinja2 the way
    transformers renders it (sandboxed, trim_blocks/lstrip_blocks, ``tojson``,
    ``raise_exception``, ``{% generation %}``, the special tokens as variables).

    Offers the two calls :class:`ftclient.tokens.HFCounter` makes: ``apply_chat_template(...,
    tokenize=False)`` and ``tok(texts, add_special_tokens=False)["input_ids"]``."""

    def __init__(self, folder: "str | os.PathLike"):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.folder = folder
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cfg = _read_json(folder / "tokenizer_config.json")
        special = {**_read_json(folder / "special_tokens_map.json"), **cfg}
        self.special = {k: t for k, v in special.items() if k.endswith("_token") and (t := _token_text(v)) is not None}
        template: Any = None
        if (folder / "chat_template.jinja").is_file():
            template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        else:
            template = cfg.get("chat_template")
            if isinstance(template, list):
                named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
                template = named.get("default")
        self.chat_template = template if isinstance(template, str) and template else None
        self._compiled = None

    def _template(self):
        if self._compiled is None:
            import jinja2
            from jinja2.ext import Extension
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            class Generation(Extension):
                tags = {"generation"}

                def parse(self, parser):
                    lineno = next(parser.stream).lineno
                    body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
                    return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

                def _render(self, caller):
                    return caller()

            def raise_exception(message):
                raise jinja2.exceptions.TemplateError(message)

            def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
                return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                                  sort_keys=sort_keys)

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[Generation, jinja2.ext.loopcontrols])
            env.filters["tojson"] = tojson
            env.globals["raise_exception"] = raise_exception
            env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
            self._compiled = env.from_string(self.chat_template)
        return self._compiled

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = False, **kw):
        if tokenize:
            raise NotImplementedError("LightTokenizer renders text only")
        return self._template().render(messages=messages, tools=None, documents=None,
                                       add_generation_prompt=add_generation_prompt, **self.special)

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = False) -> dict[str, list[list[int]]]:
        enc = self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in enc]}


# ------------------------------------------------------------------ finding tokenizers
def _hf_cache_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        dirs.append(Path(os.environ["HUGGINGFACE_HUB_CACHE"]))
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    dirs.append(home / "hub")
    return dirs


def tokenizer_dir(name: str) -> Path | None:
    """The folder holding a tokenizer for ``name`` (a path, or a repo id in the HF cache: the
    snapshot ``refs/main`` names, else the newest), found without importing transformers;
    None when there is none."""
    p = Path(name).expanduser()
    if p.is_dir() and any((p / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return p
    if "/" in name and not p.exists():
        return cached_snapshot(name, lambda snap: (snap / "tokenizer_config.json").exists()
                               or (snap / "tokenizer.json").exists())
    return None


def cached_snapshot(repo_id: str, wanted: Callable[[Path], bool]) -> Path | None:
    """The snapshot folder of ``repo_id`` in the Hugging Face cache that ``wanted`` accepts:
    the one ``refs/main`` names first, then the newest. Never touches the network."""
    if "/" not in repo_id:
        return None
    folder = "models--" + repo_id.replace("/", "--")
    for d in _hf_cache_dirs():
        snaps = d / folder / "snapshots"
        if not snaps.is_dir():
            continue
        main = d / folder / "refs" / "main"
        try:
            named = snaps / main.read_text(encoding="utf-8").strip() if main.is_file() else None
        except OSError:
            named = None
        cands = [named] if named is not None and named.is_dir() else []
        cands += sorted((s for s in snaps.iterdir() if s.is_dir()), key=lambda s: s.stat().st_mtime, reverse=True)
        for snap in cands:
            if wanted(snap):
                return snap
    return None


def find_local_tokenizer(name: str) -> str | None:
    """``name`` when :func:`tokenizer_dir` finds a tokenizer for it (a folder or a cached
    repo id), else None."""
    return name if tokenizer_dir(name) is not None else None


# ------------------------------------------------------------------ counters from a tokenizer
def light_counter(folder: Path, source: str) -> "HFCounter | str":
    """The exact counter from ``folder``'s ``tokenizer.json`` and chat template, torch-free
    (:class:`LightTokenizer`); or, when that cannot be had, the reason why."""
    try:
        tok = LightTokenizer(folder)
    except Exception as e:  # noqa: BLE001 - tokenizers missing or an unreadable file
        return f"its tokenizer.json could not be read ({type(e).__name__})"
    if tok.chat_template is None:
        return "its tokenizer has no chat template"
    c = HFCounter(tok, source)
    c.basis = f"exact: the model's own tokenizer (tokenizer.json) and chat template ({source}), rendered offline"
    return c


def load_hf_counter(src: str):
    """Exact counter from ``src``'s tokenizer: its ``tokenizer.json`` and chat template read
    without transformers (:class:`LightTokenizer`, fast and torch-free) when it has one, else
    transformers' AutoTokenizer (e.g. a sentencepiece-only tokenizer)."""
    folder = tokenizer_dir(src)
    if folder is not None and (folder / "tokenizer.json").is_file():
        c = light_counter(folder, src)
        if not isinstance(c, str):
            return c
    try:
        from transformers import AutoTokenizer
    except ImportError:  # pragma: no cover - depends on the install
        return ApproxCounter(src, reason="transformers is not installed (pip install 'ftclient[hf]')")
    try:
        tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any loading failure means: not available offline
        return ApproxCounter(src, reason=f"its tokenizer could not be loaded offline ({type(e).__name__})")
    if not getattr(tok, "chat_template", None):
        return ApproxCounter(src, reason="its tokenizer has no chat template")
    return HFCounter(tok, src)

