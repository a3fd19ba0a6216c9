"""Exporting a model this machine trained: the adapter as it is, or merged into its base.

``export_model(model_dir, fmt, out)`` writes one format into the folder ``out``:

* ``adapter``: the PEFT adapter (``adapter_config.json``, its weights), the tokenizer with its
  chat template, ftc's training record and a model card (``README.md``);
* ``merged``: the adapter merged into the base weights and saved as a normal transformers
  checkpoint (safetensors), which ``AutoModelForCausalLM.from_pretrained`` loads without PEFT,
  with the tokenizer, the chat template and the model card;
* ``gguf``: the merged model as one ``.gguf`` file (``quant``: ``f16`` by default, or ``bf16``,
  ``q8_0``, ``q5_1``, ``q5_0``, ``q4_1``, ``q4_0``), written
  with the ``gguf`` library (:mod:`.export_gguf`), with the model card;
* ``ollama``: the GGUF file with a ``Modelfile`` (its TEMPLATE measured from the chat template
  by :mod:`.ollama`, the end-of-turn stop words, the training data's system prompt when it
  had one constant one) and ``create-ollama.sh`` with the ``ollama create`` line;
* ``vllm``: a folder to serve the model with vLLM: the adapter (when its base is a Hugging
  Face id vLLM can fetch) or the merged model (a base that is a file on this machine), the
  chat template, and ``serve-vllm.sh`` with the ``vllm serve`` command line.

A full fine-tune has no adapter: ``merged`` copies its weights, ``adapter`` is refused. The
output appears whole or not at all (built in a hidden folder beside ``out`` and renamed), and
the free space is checked before anything is written. torch, transformers and peft are
imported only by the ``merged`` path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ftclient.errors import ConfigError, UsageError

from .export_gguf import QUANTS, bytes_per_weight, write_gguf
from .inference import META_FILE

__all__ = ["FORMATS", "export_model", "model_card"]

#: What ``export_model`` writes.
FORMATS = ("adapter", "merged", "gguf", "ollama", "vllm")

#: A tokenizer's files, copied as they are.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                    "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
                    "generation_config.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
#: Headroom on top of the size a merged model needs (safetensors' header, the tokenizer).
_SPACE_MARGIN = 1.05

Progress = Callable[[str, "float | None"], None]


def _say(progress: Progress | None, msg: str, frac: float | None = None) -> None:
    if progress is not None:
        progress(msg, frac)


def _meta(model_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _base_of(model_dir: Path) -> str | None:
    base = _meta(model_dir).get("base_model")
    if not base and (model_dir / "adapter_config.json").is_file():
        try:
            base = json.loads((model_dir / "adapter_config.json").read_text(encoding="utf-8")).get(
                "base_model_name_or_path")
        except (OSError, ValueError):
            base = None
    return str(base) if base else None


def model_card(model_dir: Path, fmt: str, info: Mapping[str, Any]) -> str:
    """The README.md of an export: what the model is, how it was trained, how it scored.

    ``info`` (from the job store, by the core): ``job_id``, ``base_model``, ``data_sha256``,
    ``examples``, ``epochs``, ``final_loss``, ``evals`` (a list of ``{"run_id", "data", "metric",
    "score", "examples"}``), ``ftc_version``, ``licence``."""
    meta = _meta(model_dir)
    base = info.get("base_model") or _base_of(model_dir) or "unknown"
    rows = [
        ("base model", base),
        ("format", {"adapter": "PEFT LoRA adapter (load it on the base model)",
                    "merged": "transformers checkpoint, adapter merged into the base weights",
                    "gguf": "GGUF (llama.cpp, Ollama, LM Studio), adapter merged into the base weights",
                    "ollama": "GGUF with an Ollama Modelfile, adapter merged into the base weights"}.get(fmt, fmt)),
        ("method", f"{meta.get('method', info.get('method', '?'))}, {meta.get('adapter', info.get('adapter', '?'))}"),
        ("training data sha256", info.get("data_sha256") or "unknown"),
        ("examples", info.get("examples") if info.get("examples") is not None else "unknown"),
        ("epochs", info.get("epochs") if info.get("epochs") is not None else "unknown"),
        ("steps", meta.get("steps", "unknown")),
        ("final training loss", f"{info['final_loss']:.4g}" if isinstance(info.get("final_loss"), (int, float))
         else "unknown"),
        ("ftc job", info.get("job_id") or "none"),
        ("exported by", f"ftc {info.get('ftc_version', '')}".strip()),
        ("licence of the base model", info.get("licence") or f"see the base model's own card ({base})"),
    ]
    lines = [f"# {info.get('name') or model_dir.name}", "",
             "A model fine-tuned with ftc. Its base model's licence applies to these weights.", "",
             "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]
    evals = list(info.get("evals") or [])
    if evals:
        lines += ["## Evaluations (ftc eval)", "", "| run | data | metric | score | examples |", "|---|---|---|---|---|"]
        for e in evals:
            score = e.get("score")
            lines.append(f"| {e.get('run_id', '')} | {e.get('data', '')} | {e.get('metric', '')} | "
                         f"{score if score is None else format(score, '.4g')} | {e.get('examples', '')} |")
        lines.append("")
    return "\n".join(lines)


def _fresh_target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder: nothing was written",
                         hint="Give a new folder with --out (ftc never writes over an export).")


def _atomic_folder(out: Path, build: Callable[[Path], None]) -> None:
    """Build the export in a hidden folder beside ``out`` and rename it into place; on any
    failure (Ctrl-C included) the hidden folder is removed and ``out`` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        build(tmp)
        if out.exists():  # an empty folder the user made for it
            out.rmdir()
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden work folder beside ``out`` for what an export builds on the way (a merged copy),
    removed afterwards whatever happens."""
    stage = out.parent / f".{out.name}.stage"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _written(out: Path) -> dict[str, Any]:
    """What an export wrote: its folder, the names in it and their size in bytes."""
    return {"out": str(out), "files": sorted(p.name for p in out.iterdir()),
            "bytes": sum(f.stat().st_size for f in out.rglob("*") if f.is_file())}


def _check_space(where: Path, need: int, what: str) -> None:
    free = shutil.disk_usage(where if where.exists() else where.parent).free
    if free < need:
        raise ConfigError(f"not enough disk space for {what}: it needs about {need / 2**30:.2f} GiB, "
                          f"{free / 2**30:.2f} GiB are free on the disk of {where}. Nothing was written.",
                          hint="Free some space or give --out on another disk.")


def _copy(src: Path, dst: Path, names: tuple[str, ...]) -> list[str]:
    copied = []
    for name in names:
        f = src / name
        if f.is_file():
            shutil.copy2(f, dst / name)
            copied.append(name)
    return copied


def _export_adapter(model_dir: Path, out: Path, info: Mapping[str, Any], progress: Progress | None) -> dict:
    if not (model_dir / "adapter_config.json").is_file():
        raise UsageError(f"{model_dir}: this model trained all its weights: there is no adapter to export",
                         hint="Export it with --format merged (its weights as they are).")
    size = sum((model_dir / n).stat().st_size for n in (*ADAPTER_FILES, *TOKENIZER_FILES)
               if (model_dir / n).is_file())
    _check_space(out.parent, int(size * _SPACE_MARGIN), "the adapter")

    def build(tmp: Path) -> None:
        _say(progress, "copying the adapter and the tokenizer", None)
        files = _copy(model_dir, tmp, (*ADAPTER_FILES, *TOKENIZER_FILES, META_FILE))
        (tmp / "README.md").write_text(model_card(model_dir, "adapter", info), encoding="utf-8")
        files.append("README.md")

    _atomic_folder(out, build)
    return {"format": "adapter", **_written(out), "base_model": info.get("base_model") or _base_of(model_dir)}


def _export_merged(model_dir: Path, out: Path, info: Mapping[str, Any], progress: Progress | None) -> dict:
    from .inference import load_for_inference

    _say(progress, "loading the base model and the adapter", None)
    model, tokenizer = load_for_inference(model_dir, device="cpu", dtype="fp32")
    adapted = hasattr(model, "merge_and_unload")
    if adapted:
        _say(progress, "merging the adapter into the base weights", None)
        model = model.merge_and_unload()
    dtype = getattr(model.config, "dtype", None)
    need = sum(p.numel() * p.element_size() for p in model.parameters())
    _check_space(out.parent, int(need * _SPACE_MARGIN), "the merged model")

    def build(tmp: Path) -> None:
        _say(progress, "writing the merged weights (safetensors)", None)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        record = {**_meta(model_dir), "merged": True, "exported_from": str(model_dir)}
        (tmp / META_FILE).write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        (tmp / "README.md").write_text(model_card(model_dir, "merged", info), encoding="utf-8")

    _atomic_folder(out, build)
    return {"format": "merged", **_written(out), "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": str(dtype) if dtype is not None else None, "merged_adapter": adapted,
            "base_model": info.get("base_model") or _base_of(model_dir)}


def _is_hub_id(name: str | None) -> bool:
    """``org/name`` that is no path on this machine: a model vLLM can fetch by its id."""
    return bool(name) and name.count("/") == 1 and not Path(name).expanduser().exists() \
        and not name.endswith(".gguf")


def _export_vllm(model_dir: Path, out: Path, info: Mapping[str, Any], progress: Progress | None) -> dict:
    """The adapter on its hub base (``--enable-lora --lora-modules NAME=./adapter``), else the
    merged model; the chat template beside it, and the command in ``serve-vllm.sh``."""
    import shlex

    name = _served_name(info, model_dir)
    base = info.get("base_model") or _base_of(model_dir)
    adapter = (model_dir / "adapter_config.json").is_file() and _is_hub_id(base)
    with _staging(out) as stage:
        inner = stage / ("adapter" if adapter else "model")
        part = (_export_adapter if adapter else _export_merged)(model_dir, inner, info, progress)
        template = _chat_template(inner)
        if adapter:
            rank = json.loads((inner / "adapter_config.json").read_text(encoding="utf-8")).get("r") or 16
            cmd = ["vllm", "serve", str(base), "--enable-lora", "--lora-modules", f"{name}=./adapter",
                   "--max-lora-rank", str(rank)]
        else:
            cmd = ["vllm", "serve", "./model", "--served-model-name", name]
        if template:
            cmd += ["--chat-template", "./chat_template.jinja"]

        def build(tmp: Path) -> None:
            os.rename(inner, tmp / inner.name)
            if template:
                (tmp / "chat_template.jinja").write_text(template, encoding="utf-8")
            script = tmp / "serve-vllm.sh"
            script.write_text("#!/bin/sh\n# Serve the fine-tuned model with vLLM (OpenAI-compatible API on port 8000);\n"
                              f"# clients ask for the model {name!r}.\n"
                              'cd "$(dirname "$0")" || exit 1\n'
                              f"exec {shlex.join(cmd)} \"$@\"\n", encoding="utf-8")
            script.chmod(0o755)
            (tmp / "README.md").write_text(model_card(model_dir, "adapter" if adapter else "merged", info)
                                           + f"\n## Serve with vLLM\n\n```sh\n{shlex.join(cmd)}\n```\n",
                                           encoding="utf-8")

        _atomic_folder(out, build)
    return {"format": "vllm", **_written(out), "mode": part["format"],
            "served_model_name": name, "command": shlex.join(cmd), "base_model": base}


def _export_gguf(model_dir: Path, out: Path, info: Mapping[str, Any], progress: Progress | None,
                 quant: str) -> dict:
    """The merged model (built in a hidden folder beside ``out``, then removed) written as one
    GGUF file; the free space for the file is checked before it is written."""
    name = _served_name(info, model_dir)
    with _staging(out) as stage:
        part = _export_merged(model_dir, stage / "merged", info, progress)
        bytes_per = bytes_per_weight(quant)
        _check_space(out.parent, int(part["parameters"] * bytes_per * _SPACE_MARGIN), f"the {quant} GGUF file")
        facts: dict[str, Any] = {}

        def build(tmp: Path) -> None:
            facts.update(write_gguf(stage / "merged", tmp / f"{name}.gguf", quant=quant, progress=progress, name=name))
            (tmp / "README.md").write_text(model_card(model_dir, "gguf", info), encoding="utf-8")

        _atomic_folder(out, build)
    return {"format": "gguf", **_written(out), "quant": quant, "gguf": str(out / f"{name}.gguf"),
            "architecture": facts.get("architecture"), "tensors": facts.get("tensors"),
            "add_bos_token": facts.get("add_bos_token"),
            "warnings": facts.get("warnings") or [], "base_model": part["base_model"]}


def _export_ollama(model_dir: Path, out: Path, info: Mapping[str, Any], progress: Progress | None,
                   quant: str) -> dict:
    """The GGUF file with a Modelfile beside it. The chat template is measured first (a template
    Ollama's cannot say is refused before anything is written)."""
    import shlex

    from transformers import AutoTokenizer

    from . import ollama

    name = _served_name(info, model_dir)
    _say(progress, "reading the chat template", None)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if not getattr(tok, "chat_template", None):
        raise UsageError(f"{model_dir}: the tokenizer has no chat template to write as an Ollama TEMPLATE",
                         hint="Export --format gguf and write the Modelfile by hand.")
    shape = ollama.chat_shape(lambda msgs, gen: tok.apply_chat_template(list(msgs), tokenize=False,
                                                                        add_generation_prompt=gen),
                              bos_token=tok.bos_token)
    eos = _generation_eos(model_dir)
    with _staging(out) as stage:
        part = _export_gguf(model_dir, stage / "gguf", info, progress, quant)
        gguf_file = Path(part["gguf"])
        template = ollama.go_template(shape, add_bos=bool(part.get("add_bos_token")))
        stops = ollama.stop_words(shape, tok, eos)
        text, warnings = ollama.modelfile(gguf_file.name, template, stops=stops, system=info.get("system_prompt"),
                                          name=name)
        create = ollama.create_command(name)

        def build(tmp: Path) -> None:
            os.rename(gguf_file, tmp / gguf_file.name)
            (tmp / "Modelfile").write_text(text, encoding="utf-8")
            script = tmp / "create-ollama.sh"
            script.write_text("#!/bin/sh\n# Make the fine-tuned model an Ollama model, then: ollama run "
                              f"{shlex.quote(name)}\n" 'cd "$(dirname "$0")" || exit 1\n'
                              f"exec {create} \"$@\"\n", encoding="utf-8")
            script.chmod(0o755)
            (tmp / "README.md").write_text(model_card(model_dir, "ollama", info)
                                           + f"\n## Run with Ollama\n\n```sh\n{create}\nollama run "
                                             f"{shlex.quote(name)}\n```\n", encoding="utf-8")

        _atomic_folder(out, build)
    return {"format": "ollama", **_written(out), "quant": quant, "gguf": str(out / gguf_file.name),
            "modelfile": str(out / "Modelfile"), "command": create, "served_model_name": name,
            "stop": stops, "system_prompt": bool(info.get("system_prompt")) and "SYSTEM" in text,
            "warnings": [*part["warnings"], *shape.warnings, *warnings], "base_model": part["base_model"]}


def _generation_eos(model_dir: Path) -> list[int]:
    """The EOS ids of ``generation_config.json`` (one id or a list), where the folder has one."""
    try:
        eos = json.loads((model_dir / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return []
    return [i for i in (eos if isinstance(eos, list) else [eos]) if isinstance(i, int)]


def _served_name(info: Mapping[str, Any], model_dir: Path) -> str:
    """A file and model name: the spec's name (or the folder's), letters, digits, - _ . only."""
    return safe_name(str(info.get("name") or model_dir.parent.name or "ftc-model"))


def safe_name(text: str) -> str:
    """``text`` as a file and model name: letters, digits, - _ . only (``ftc-model`` if nothing is left)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-.") or "ftc-model"


def _chat_template(folder: Path) -> str | None:
    """The chat template a tokenizer folder carries (``chat_template.jinja`` or its config)."""
    f = folder / "chat_template.jinja"
    if f.is_file():
        return f.read_text(encoding="utf-8")
    try:
        t = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError):
        return None
    return t if isinstance(t, str) else None


def export_model(model_dir: "str | os.PathLike", fmt: str, out: "str | os.PathLike", *, quant: str | None = None,
                 info: Mapping[str, Any] | None = None, progress: Progress | None = None) -> dict:
    """Write ``model_dir`` (a local job's model folder: an adapter or a full model) as ``fmt``
    into the new folder ``out``; returns what was written. ``quant``: for ``gguf`` and ``ollama``
    (default ``f16``). ``info``: the model card's facts."""
    fmt = (fmt or "").strip().lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", hint=f"Use one of: {', '.join(FORMATS)}.")
    if quant is not None and fmt not in ("gguf", "ollama"):
        raise UsageError(f"--quant applies to the gguf and ollama formats, not to {fmt}")
    quant = (quant or "f16").strip().lower()
    if quant not in QUANTS:
        raise UsageError(f"unknown quantisation {quant!r} for gguf", hint=f"Use one of: {', '.join(QUANTS)}.")
    src, dst = Path(model_dir), Path(out).expanduser()
    if not src.is_dir():
        raise UsageError(f"{src}: no such model folder")
    _fresh_target(dst)
    card = dict(info or {})
    if fmt in ("gguf", "ollama"):
        return (_export_gguf if fmt == "gguf" else _export_ollama)(src, dst.resolve(), card, progress, quant)
    how = {"adapter": _export_adapter, "merged": _export_merged, "vllm": _export_vllm}[fmt]
    return how(src, dst.resolve(), card, progress)
