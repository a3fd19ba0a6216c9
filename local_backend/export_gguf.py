"""Writing a merged model as one GGUF file, the format llama.cpp, Ollama and LM Studio run.

:func:`write_gguf` reads a transformers checkpoint (``config.json``, ``*.safetensors``,
``tokenizer.json`` and the tokenizer config with its chat template) and writes one ``.gguf``
file with the ``gguf`` package's own writer, name maps and quantisation; no llama.cpp build
is needed. The tensors are streamed: their shapes are declared to the writer first (read
from the safetensors headers), then each one is loaded, converted and written before the
next is read, so memory holds one tensor at a time, not the model.

What a llama.cpp-compatible file holds, besides the tensors under GGUF names:

* the hyperparameters under ``<arch>.*`` (context length, embedding length, block count,
  feed-forward length, head counts, key/value head size, RoPE base and dimensions, RMS
  norm epsilon, vocabulary size);
* the tokenizer as a GPT-2 style byte-level BPE (``tokenizer.ggml.*``: tokens, token
  types, merges, the special token ids, whether BOS/EOS are added, and the name of the
  pre-tokenizer that splits text before BPE) and the chat template
  (``tokenizer.chat_template``);
* tied embeddings as llama.cpp expects them: no ``output.weight``; the runtime reuses
  ``token_embd.weight``.

Llama's attention weights are reordered for llama.cpp: transformers rotates the pairs
``(i, i + head_dim/2)`` of each head (``rotate_half``), llama.cpp's Llama graph rotates
adjacent pairs ``(2i, 2i + 1)``, so the rows of each query and key head are interleaved.
Qwen2 and Qwen3 run with llama.cpp's NEOX rotation, which is transformers', and need none.

Quantisation: ``f16`` and ``bf16`` store the matrices as 16-bit floats (cast); ``q8_0``,
``q5_1``, ``q5_0``, ``q4_1`` and ``q4_0`` as blocks of 32 values with a float16 scale (and
offset, for the ``_1`` types), quantised by the ``gguf`` library's own ``gguf.quants`` (every
type it can write; the k-quants it can only read). Vectors (norms, biases) stay float32, as
llama.cpp requires; a matrix whose rows are not a multiple of 32 falls back to f16.

The file is written to a temporary file next to the target and renamed at the end, so a
failure or Ctrl-C leaves no partial ``.gguf``. torch, gguf and safetensors are imported
inside the function, never at module import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftclient.errors import UsageError

#: The quantisations ``write_gguf`` writes, largest first: ``--quant`` -> (GGML tensor type, file type).
_QUANT_TYPES = {"f16": ("F16", "MOSTLY_F16"), "bf16": ("BF16", "MOSTLY_BF16"), "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
                "q5_1": ("Q5_1", "MOSTLY_Q5_1"), "q5_0": ("Q5_0", "MOSTLY_Q5_0"), "q4_1": ("Q4_1", "MOSTLY_Q4_1"),
                "q4_0": ("Q4_0", "MOSTLY_Q4_0")}
QUANTS = tuple(_QUANT_TYPES)


def bytes_per_weight(quant: str) -> float:
    """What one weight of a matrix takes in the file for ``quant`` (a block's bytes over its values)."""
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[_QUANT_TYPES[quant][0]]]
    return size / block

#: transformers architecture -> (GGUF architecture, whether Q/K rows are interleaved).
_ARCHS: dict[str, tuple[str, bool]] = {
    "LlamaForCausalLM": ("llama", True),  # Llama 2/3, SmolLM/SmolLM2, TinyLlama-shaped models
    "Qwen2ForCausalLM": ("qwen2", False),  # Qwen2, Qwen2.5
    "Qwen3ForCausalLM": ("qwen3", False),  # Qwen3 (dense)
}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(_ARCHS)
# For a config.json that names no architecture, only a model_type.
_MODEL_TYPES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

# Pre-tokenizer split patterns, as tokenizer.json spells them, and the name llama.cpp knows
# each by (``tokenizer.ggml.pre``).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_NAMES = {_LLAMA3_SPLIT: "llama-bpe", _QWEN2_SPLIT: "qwen2"}

Progress = Callable[[str, "float | None"], None]


@dataclass
class _Tensor:
    file: Path  # the safetensors file holding it
    src: str  # its name there ("" for a tensor computed here)
    name: str  # its GGUF name
    shape: tuple[int, ...]  # numpy order
    qtype: Any  # gguf.GGMLQuantizationType
    nbytes: int
    permute_heads: int = 0  # Llama Q/K: interleave the rotary halves of this many heads


def write_gguf(model_dir: Path, out_file: Path, *, quant: str = "f16",
               progress: Progress | None = None, name: str | None = None) -> dict:
    """Write the transformers checkpoint in model_dir (config.json, *.safetensors, tokenizer files incl. chat template) as one GGUF file.

    ``quant`` is one of :data:`QUANTS`; ``progress(message, fraction)`` is called as the work
    goes (``fraction`` in [0, 1], or None where unknown); ``name`` is the model's name in the
    file (``general.name``; the output file's stem by default). Returns what a report needs:
    ``path``, ``architecture`` (GGUF), ``hf_architecture``, ``quant``, ``tensors`` (count),
    ``bytes`` (the file's size), ``tensor_types`` (count per GGML type), ``metadata_keys``,
    ``vocab_size``, ``tied_embeddings``, ``tokenizer_pre``, ``chat_template`` (whether one was
    written), ``add_bos_token`` (whether readers put BOS in front of a prompt) and ``warnings``.
    Raises UsageError for what the user can fix (an unsupported architecture or tokenizer, a
    folder that is not a checkpoint); nothing is left at ``out_file`` then, nor after any other
    failure or an interrupt.
    """
    import gguf
    import numpy as np

    from ftclient.fileio import atomic_writer

    model_dir, out_file = Path(model_dir), Path(out_file)
    quant = (quant or "").lower()
    if quant not in QUANTS:
        raise UsageError(f"unknown GGUF quantisation {quant!r}", hint=f"Choose one of: {', '.join(QUANTS)}.")
    report: Callable[[str, float | None], None] = progress or (lambda message, fraction: None)
    warnings: list[str] = []

    config = _read_json(model_dir, "config.json")
    hf_arch = next((a for a in config.get("architectures") or [] if a in _ARCHS), None)
    if hf_arch is None and not config.get("architectures"):
        hf_arch = _MODEL_TYPES.get(str(config.get("model_type")))
    if hf_arch is None:
        found = ", ".join(config.get("architectures") or []) or f"model_type {config.get('model_type')!r}"
        raise UsageError(f"{model_dir}: cannot write a {found} model as GGUF",
                         hint=f"GGUF export supports: {', '.join(SUPPORTED_ARCHITECTURES)}.")
    arch, interleave_qk = _ARCHS[hf_arch]
    hp = _hyperparameters(config, model_dir)
    report("reading the model", None)

    # --- the tensors: names, shapes and types, from the safetensors headers only
    name_map = gguf.get_tensor_name_map(_model_arch(gguf, arch), hp["block_count"])
    plan = _plan_tensors(gguf, np, model_dir, name_map, hp, quant, interleave_qk)
    if (factors := _llama3_rope_factors(hp)) is not None:
        plan.insert(0, _Tensor(Path(), "", "rope_freqs.weight", (len(factors),),
                               gguf.GGMLQuantizationType.F32, 4 * len(factors)))

    # --- the metadata
    writer = gguf.GGUFWriter(None, arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name or out_file.stem)
    writer.add_context_length(hp["context_length"])
    writer.add_embedding_length(hp["embedding_length"])
    writer.add_feed_forward_length(hp["feed_forward_length"])
    writer.add_block_count(hp["block_count"])
    writer.add_head_count(hp["head_count"])
    writer.add_head_count_kv(hp["head_count_kv"])
    writer.add_key_length(hp["head_dim"])
    writer.add_value_length(hp["head_dim"])
    writer.add_rope_dimension_count(hp["head_dim"])
    writer.add_rope_freq_base(hp["rope_theta"])
    _add_rope_scaling(gguf, writer, hp)
    writer.add_layer_norm_rms_eps(hp["rms_norm_eps"])
    writer.add_vocab_size(hp["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType[_QUANT_TYPES[quant][1]])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tok = _add_tokenizer(gguf, writer, model_dir, hp["vocab_size"], warnings)

    for t in plan:
        if t.qtype not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):  # bytes of blocks
            byte_shape = gguf.quant_shape_to_byte_shape(t.shape, t.qtype)
            writer.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), t.nbytes, raw_dtype=t.qtype)
        else:
            dtype = np.float32 if t.qtype == gguf.GGMLQuantizationType.F32 else np.float16
            writer.add_tensor_info(t.name, t.shape, np.dtype(dtype), t.nbytes)
    metadata_keys = list(writer.kv_data[0])

    # --- the file: header, metadata, tensor infos, then the tensors one by one
    total = sum(t.nbytes for t in plan) or 1
    done = 0
    with atomic_writer(out_file, "wb") as f:
        # The writer opens its own file from a path; hand it ours (the atomic temporary file)
        # the way it keeps an already opened one, so that the rename stays ours.
        writer.fout = [f]
        writer.state = gguf.gguf_writer.WriterState.EMPTY
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        handles: dict[Path, Any] = {}
        try:
            for t in plan:
                if t.src:
                    data = _load(handles, t.file, t.src)
                    if t.permute_heads:
                        data = _interleave_rotary_halves(data, t.permute_heads)
                else:
                    data = np.asarray(factors, dtype=np.float32)
                out = _convert(gguf, np, data, t.qtype)
                if t.qtype == gguf.GGMLQuantizationType.F16 and not np.isfinite(out).all() and np.isfinite(data).all():
                    warnings.append(f"{t.name}: values beyond float16's range became inf (try q8_0)")
                del data
                writer.write_tensor_data(out)
                done += t.nbytes
                report("writing tensors", done / total)
        finally:
            for h in handles.values():
                h.__exit__(None, None, None)
    report("done", 1.0)

    counts: dict[str, int] = {}
    for t in plan:
        counts[t.qtype.name] = counts.get(t.qtype.name, 0) + 1
    return {
        "path": str(out_file),
        "architecture": arch,
        "hf_architecture": hf_arch,
        "quant": quant,
        "tensors": len(plan),
        "tensor_types": counts,
        "bytes": out_file.stat().st_size,
        "metadata_keys": metadata_keys,
        "vocab_size": hp["vocab_size"],
        "tied_embeddings": hp["tied"],
        "tokenizer_pre": tok["pre"],
        "chat_template": tok["chat_template"],
        "add_bos_token": tok["add_bos"],
        "warnings": warnings,
    }


# ----------------------------------------------------------------------------- config


def _read_json(folder: Path, fname: str) -> dict:
    p = folder / fname
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a model directory", hint="Give the folder of a merged model (save_pretrained).")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: no {fname}", hint="Give the folder of a merged model (save_pretrained).") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{p}: cannot read it ({e})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{p}: not a JSON object")
    return data


def _hyperparameters(config: dict, model_dir: Path) -> dict:
    def need(*keys: str) -> Any:
        for k in keys:
            if config.get(k) is not None:
                return config[k]
        raise UsageError(f"{model_dir}/config.json: no {keys[0]!r}", hint="Is this a complete transformers checkpoint?")

    hidden = int(need("hidden_size"))
    heads = int(need("num_attention_heads"))
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope_theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    return {
        "context_length": int(need("max_position_embeddings")),
        "embedding_length": hidden,
        "feed_forward_length": int(need("intermediate_size")),
        "block_count": int(need("num_hidden_layers")),
        "head_count": heads,
        "head_count_kv": int(config.get("num_key_value_heads") or heads),
        "head_dim": int(config.get("head_dim") or hidden // heads),
        "rope_theta": float(rope_theta),
        "rope": rope,
        "rms_norm_eps": float(need("rms_norm_eps")),
        "vocab_size": int(need("vocab_size")),
        "tied": bool(config.get("tie_word_embeddings", False)),
    }


def _model_arch(gguf: Any, arch: str) -> Any:
    return next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)


def _rope_type(hp: dict) -> str:
    return str(hp["rope"].get("rope_type") or hp["rope"].get("type") or "default").lower()


def _add_rope_scaling(gguf: Any, writer: Any, hp: dict) -> None:
    kind, rope = _rope_type(hp), hp["rope"]
    if kind in ("default", "llama3"):  # llama3: a rope_freqs tensor (see _llama3_rope_factors)
        return
    factor = rope.get("factor")
    if kind == "linear" and factor:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(factor))
        return
    if kind == "yarn" and factor:
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(factor))
        original = rope.get("original_max_position_embeddings")
        if original:
            writer.add_rope_scaling_orig_ctx_len(int(original))
        return
    raise UsageError(f"RoPE scaling {kind!r} is not supported by the GGUF export",
                     hint="Supported: none, linear, yarn, llama3.")


def _llama3_rope_factors(hp: dict) -> list[float] | None:
    """Llama 3.1+'s frequency-dependent RoPE scaling, which llama.cpp reads as per-frequency
    divisors from a ``rope_freqs`` tensor: 1 for short wavelengths, ``factor`` for long
    ones, and a smooth blend between the two thresholds."""
    if _rope_type(hp) != "llama3":
        return None
    rope, dim = hp["rope"], hp["head_dim"]
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    original = float(rope.get("original_max_position_embeddings", 8192))
    out = []
    for i in range(0, dim, 2):
        wavelength = 2 * math.pi * hp["rope_theta"] ** (i / dim)
        if wavelength < original / high:
            out.append(1.0)
        elif wavelength > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return out


# ----------------------------------------------------------------------------- tensors


def _safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(model_dir, index.name).get("weight_map") or {}
        files = [model_dir / f for f in dict.fromkeys(weight_map.values())]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise UsageError(f"{model_dir}: missing weight files {', '.join(missing[:3])}")
        return files
    files = sorted(p for p in model_dir.glob("*.safetensors") if not p.name.startswith("adapter_"))
    if not files:
        raise UsageError(f"{model_dir}: no *.safetensors weights",
                         hint="Save the merged model with save_pretrained (safetensors).")
    return files


def _plan_tensors(gguf: Any, np: Any, model_dir: Path, name_map: Any, hp: dict, quant: str,
                  interleave_qk: bool) -> list[_Tensor]:
    from safetensors import safe_open

    Q = gguf.GGMLQuantizationType
    plan: list[_Tensor] = []
    seen: dict[str, str] = {}
    for path in _safetensors_files(model_dir):
        try:
            with safe_open(str(path), framework="pt") as f:
                entries = [(k, tuple(f.get_slice(k).get_shape())) for k in f.keys()]
        except Exception as e:  # a truncated or foreign file
            raise UsageError(f"{path}: not a readable safetensors file ({e})") from None
        for src, shape in entries:
            if src.endswith(".rotary_emb.inv_freq"):
                continue  # recomputed at run time
            if src == "lm_head.weight" and hp["tied"]:
                continue  # tied: llama.cpp reuses token_embd.weight when output.weight is absent
            gname = name_map.get_name(src, try_suffixes=(".weight", ".bias"))
            if gname is None:
                raise UsageError(f"{path.name}: tensor {src!r} has no GGUF name for this architecture",
                                 hint="Is the model a plain (merged) checkpoint of a supported architecture?")
            if gname in seen:
                raise UsageError(f"{model_dir}: tensors {seen[gname]!r} and {src!r} both map to {gname!r}")
            seen[gname] = src
            if len(shape) <= 1 or gname.endswith("_norm.weight"):
                qtype = Q.F32
            else:
                qtype = Q[_QUANT_TYPES[quant][0]]
                if gguf.GGML_QUANT_SIZES[qtype][0] > 1 and shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
                    qtype = Q.F16  # rows that do not fill whole blocks
            n = math.prod(shape)
            nbytes = {Q.F32: 4 * n, Q.F16: 2 * n, Q.BF16: 2 * n}.get(qtype) \
                or math.prod(gguf.quant_shape_to_byte_shape(shape, qtype))
            heads = 0
            if interleave_qk and src.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
                heads = hp["head_count"]
            elif interleave_qk and src.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
                heads = hp["head_count_kv"]
            plan.append(_Tensor(path, src, gname, shape, qtype, nbytes, heads))

    names = {t.name for t in plan}
    if "token_embd.weight" not in names:
        raise UsageError(f"{model_dir}: no token embedding (model.embed_tokens.weight) in the weights")
    if not hp["tied"] and "output.weight" not in names:
        raise UsageError(f"{model_dir}: no lm_head.weight, and config.json says the embeddings are not tied")
    return plan


def _load(handles: dict, path: Path, src: str) -> Any:
    import torch
    from safetensors import safe_open

    if path not in handles:
        h = safe_open(str(path), framework="pt")
        handles[path] = h.__enter__() if hasattr(h, "__enter__") else h
    return handles[path].get_tensor(src).to(torch.float32).numpy()


def _interleave_rotary_halves(w: Any, n_head: int) -> Any:
    """Reorder each head's rows from transformers' ``[x_0..x_{d/2-1}, y_0..y_{d/2-1}]``
    (rotate_half pairs row i with i + d/2) to ``[x_0, y_0, x_1, y_1, ...]`` (llama.cpp's
    Llama rotation pairs adjacent rows)."""
    d = w.shape[0] // n_head
    rest = w.shape[1:]
    return w.reshape(n_head, 2, d // 2, *rest).swapaxes(1, 2).reshape(w.shape)


def _convert(gguf: Any, np: Any, data: Any, qtype: Any) -> Any:
    Q = gguf.GGMLQuantizationType
    if qtype == Q.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == Q.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


# ----------------------------------------------------------------------------- tokenizer


def _looks_special(token: str) -> bool:
    return (token.startswith("<|") and token.endswith("|>")) or token in ("<pad>", "<mask>")


def _pre_tokenizer_name(tj: dict) -> str | None:
    """llama.cpp's name for the way this tokenizer splits text before BPE, from the
    structure of tokenizer.json's pre_tokenizer; None if it is not one llama.cpp knows."""
    pre = tj.get("pre_tokenizer") or {}
    parts = (pre.get("pretokenizers") or []) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    last = parts[-1] if parts else {}
    if not kinds or kinds[-1] != "ByteLevel" or last.get("add_prefix_space"):
        return None
    if kinds == ["ByteLevel"] and last.get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and last.get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not last.get("use_regex", True):
        split = parts[0]
        if str(split.get("behavior", "")).lower() == "isolated" and not split.get("invert"):
            return _SPLIT_NAMES.get((split.get("pattern") or {}).get("Regex"))
    return None


def _add_tokenizer(gguf: Any, writer: Any, model_dir: Path, vocab_size: int, warnings: list[str]) -> dict:
    tj = _read_json(model_dir, "tokenizer.json")
    model = tj.get("model") or {}
    pre = tj.get("pre_tokenizer") or {}
    byte_level = "ByteLevel" in json.dumps(pre) or (tj.get("decoder") or {}).get("type") == "ByteLevel"
    if model.get("type") != "BPE" or model.get("byte_fallback") or not byte_level:
        kind = model.get("type") or "unknown"
        if model.get("byte_fallback"):
            kind = "SentencePiece-style BPE"
        raise UsageError(f"{model_dir}/tokenizer.json: a {kind} tokenizer; the GGUF export writes byte-level "
                         "BPE tokenizers (GPT-2 style) only",
                         hint=f"Supported models: {', '.join(SUPPORTED_ARCHITECTURES)} with a byte-level BPE "
                              "tokenizer (SmolLM2, Llama 3, Qwen2/2.5/3).")

    vocab: dict[str, int] = model.get("vocab") or {}
    added = {int(a["id"]): a for a in tj.get("added_tokens") or [] if "id" in a and "content" in a}
    top = max([*vocab.values(), *added, -1]) + 1
    if top > vocab_size:
        raise UsageError(f"{model_dir}: the tokenizer has ids up to {top - 1}, beyond the model's vocab_size "
                         f"{vocab_size}", hint="config.json and the tokenizer do not belong together.")
    T = gguf.TokenType
    tokens: list[str | None] = [None] * vocab_size
    types = [int(T.UNUSED)] * vocab_size
    for text, i in vocab.items():
        tokens[i], types[i] = text, int(T.NORMAL)
    for i, a in added.items():
        # Added tokens are stored as their text (llama.cpp matches them before byte-level BPE).
        text = a["content"]
        tokens[i] = text
        types[i] = int(T.CONTROL if a.get("special") or _looks_special(text) else T.USER_DEFINED)
    for i, text in enumerate(tokens):
        if text is None:
            tokens[i] = f"[PAD{i}]"

    pre_name = _pre_tokenizer_name(tj)
    if pre_name is None:
        pre_name = "default"
        warnings.append("the tokenizer's pre-tokenizer is not one llama.cpp knows by name; wrote 'default', "
                        "which may split some text differently from the original tokenizer")

    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise UsageError(f"{model_dir}/tokenizer.json: no BPE merges")
    # Whether BOS/EOS are added to a plain encode, from the tokenizer itself, stated explicitly:
    # readers that find no flag fall back to their own default, which differs between them.
    try:
        from tokenizers import Tokenizer

        ids = Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode("a", add_special_tokens=True).ids
    except Exception:  # pragma: no cover - tokenizers is a transformers dependency
        ids = []
    bos, eos = special.special_token_ids.get("bos"), special.special_token_ids.get("eos")
    special.add_special_token.setdefault("bos", bool(ids) and bos is not None and ids[0] == bos)
    special.add_special_token.setdefault("eos", bool(ids) and eos is not None and ids[-1] == eos and len(ids) > 1)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_name)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    tc_path = model_dir / "tokenizer_config.json"
    if tc_path.is_file():
        try:
            tc = json.loads(tc_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tc = {}
        if isinstance(tc, dict) and isinstance(tc.get("add_prefix_space"), bool):
            writer.add_add_space_prefix(tc["add_prefix_space"])
    jinja = model_dir / "chat_template.jinja"
    if special.chat_template is None and jinja.is_file():  # read there only beside a tokenizer_config.json
        special.chat_template = jinja.read_text(encoding="utf-8")
    special.add_to_gguf(writer, quiet=True)
    if special.chat_template is None:
        warnings.append("the tokenizer has no chat template; chat front ends will fall back to their own")
    return {"pre": pre_name, "chat_template": special.chat_template is not None,
            "add_bos": bool(special.add_special_token.get("bos"))}
