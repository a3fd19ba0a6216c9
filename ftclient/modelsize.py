"""A model's parameter count, offline and without torch.

``param_count("HuggingFaceTB/SmolLM2-135M-Instruct")`` -> :class:`ParamCount` or None.

Where the count comes from, best first:

* the weights' own headers: every ``*.safetensors`` file of a model folder (a path, or a
  repo id's snapshot in the local Hugging Face cache), or a ``.gguf`` file's tensor table:
  exact (the sum of the tensor shapes);
* the folder's ``config.json`` (Llama-style decoder: embeddings, attention with grouped
  key/value heads, gated MLP, norms): estimated;
* the name (``...-135M-...``, ``...-8B-...``): estimated.

Only headers are read (a few kilobytes), never the weights.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .tokens import cached_snapshot

__all__ = ["ParamCount", "param_count", "params_from_name", "hf_snapshot_dir"]

_MAX_HEADER = 100 * 1024 * 1024  # a safetensors header larger than this is not one


@dataclass(frozen=True)
class ParamCount:
    params: int
    exact: bool
    basis: str

    @property
    def params_b(self) -> float:
        return self.params / 1e9


def hf_snapshot_dir(repo_id: str) -> Path | None:
    """The local snapshot folder of ``repo_id`` in the Hugging Face cache that holds its weights
    or config (the one ``refs/main`` names, else the newest), or None. Never touches the network."""
    return cached_snapshot(repo_id, lambda snap: (snap / "config.json").is_file() or any(snap.glob("*.safetensors")))


def param_count(ref: str | os.PathLike) -> ParamCount | None:
    """The parameter count of a model folder, a ``.gguf`` file or a cached HF repo id, or None
    when none of its files is on this machine (see :func:`params_from_name` for the name)."""
    s = str(ref).strip()
    p = Path(os.path.expanduser(s))
    where = s
    if not p.exists():
        snap = hf_snapshot_dir(s)
        if snap is None:
            return None
        p, where = snap, f"{s} in the local Hugging Face cache"
    try:
        if p.is_file():
            if p.suffix.lower() == ".gguf":
                n = _gguf_params(p)
                return ParamCount(n, True, f"exact: the tensor table of {p.name} (GGUF header)")
            if p.suffix.lower() == ".safetensors":
                return ParamCount(_safetensors_params(p), True, f"exact: the tensor shapes of {p.name}")
            return None
        return _folder_params(p, where)
    except (OSError, ValueError, struct.error, KeyError, TypeError):
        return None


def _folder_params(p: Path, where: str) -> ParamCount | None:
    files = sorted(p.glob("*.safetensors"))
    index = p / "model.safetensors.index.json"
    if index.is_file():
        wm = json.loads(index.read_text(encoding="utf-8")).get("weight_map") or {}
        files = sorted({p / f for f in wm.values()})
    if files and all(f.is_file() for f in files):
        n = sum(_safetensors_params(f) for f in files)
        return ParamCount(n, True, f"exact: the tensor shapes in {len(files)} safetensors file(s) of {where}")
    ggufs = sorted(p.glob("*.gguf"))
    if ggufs:
        return ParamCount(_gguf_params(ggufs[0]), True, f"exact: the tensor table of {ggufs[0].name} ({where})")
    cfg = p / "config.json"
    if cfg.is_file():
        n = params_from_config(json.loads(cfg.read_text(encoding="utf-8")))
        if n:
            return ParamCount(n, False, f"estimated from the config.json of {where} (Llama-style decoder layers)")
    adapter = p / "adapter_config.json"
    if adapter.is_file():  # a LoRA adapter: the model served is its base
        base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if isinstance(base, str) and base and base != str(p):
            got = param_count(base)
            if got is not None:
                return ParamCount(got.params, got.exact, f"{got.basis} (the base model of the adapter in {where})")
    return None


def _safetensors_params(path: Path) -> int:
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", _read(f, 8))
        if size <= 0 or size > _MAX_HEADER:
            raise ValueError("not a safetensors header")
        header = json.loads(_read(f, size))
    return sum(math.prod(int(x) for x in t["shape"]) for k, t in header.items() if k != "__metadata__")


# GGUF value types (gguf.GGUFValueType): sizes of the fixed-width ones.
_GGUF_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def _read(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise ValueError("truncated file")
    return b


def _gguf_skip_value(f: BinaryIO, vtype: int) -> None:
    if vtype in _GGUF_FIXED:
        f.seek(_GGUF_FIXED[vtype], 1)
    elif vtype == _GGUF_STRING:
        (n,) = struct.unpack("<Q", _read(f, 8))
        f.seek(n, 1)
    elif vtype == _GGUF_ARRAY:
        (itype,) = struct.unpack("<I", _read(f, 4))
        (n,) = struct.unpack("<Q", _read(f, 8))
        if itype in _GGUF_FIXED:
            f.seek(_GGUF_FIXED[itype] * n, 1)
        else:
            for _ in range(n):
                _gguf_skip_value(f, itype)
    else:
        raise ValueError(f"unknown GGUF value type {vtype}")


def _gguf_params(path: Path) -> int:
    """Sum of the element counts in a GGUF (v2/v3) file's tensor table."""
    with open(path, "rb") as f:
        if _read(f, 4) != b"GGUF":
            raise ValueError("not a GGUF file")
        (version,) = struct.unpack("<I", _read(f, 4))
        if version < 2:
            raise ValueError("GGUF v1 is not read")
        n_tensors, n_kv = struct.unpack("<QQ", _read(f, 16))
        for _ in range(n_kv):
            (klen,) = struct.unpack("<Q", _read(f, 8))
            f.seek(klen, 1)
            (vtype,) = struct.unpack("<I", _read(f, 4))
            _gguf_skip_value(f, vtype)
        total = 0
        for _ in range(n_tensors):
            (nlen,) = struct.unpack("<Q", _read(f, 8))
            f.seek(nlen, 1)
            (ndim,) = struct.unpack("<I", _read(f, 4))
            dims = struct.unpack(f"<{ndim}Q", _read(f, 8 * ndim))
            f.seek(4 + 8, 1)  # type, offset
            total += math.prod(dims)
    return total


def params_from_config(cfg: dict[str, Any]) -> int | None:
    """Parameters of a Llama-style decoder from its config.json (embeddings, attention with
    grouped key/value heads, gated MLP, RMS norms; an untied output head when the config says
    so), or None when the config lacks the sizes."""
    cfg = cfg.get("text_config") or cfg
    try:
        h = int(cfg["hidden_size"])
        layers = int(cfg["num_hidden_layers"])
        vocab = int(cfg["vocab_size"])
        inter = int(cfg["intermediate_size"])
        heads = int(cfg["num_attention_heads"])
    except (KeyError, TypeError, ValueError):
        return None
    kv = int(cfg.get("num_key_value_heads") or heads)
    hd = int(cfg.get("head_dim") or h // heads)
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h
    if cfg.get("attention_bias") or cfg.get("model_type") in ("qwen2",):
        attn += heads * hd + 2 * kv * hd
    per_layer = attn + 3 * h * inter + 2 * h
    tied = cfg.get("tie_word_embeddings", True)
    return layers * per_layer + vocab * h * (1 if tied else 2) + h


def params_from_name(name: str) -> ParamCount | None:
    """A size written in a model's name (``SmolLM2-135M-Instruct`` -> 135M, ``Llama-3.1-8B`` -> 8B;
    :func:`ftclient.prices.params_from_name`, which the catalogue's size tiers use too)."""
    from .prices import params_from_name as _from_name

    tail = str(name).rstrip("/").rsplit("/", 1)[-1]
    got = _from_name(tail)
    if got is None:
        return None
    b, basis = got
    return ParamCount(int(round(b * 1e9)), False, f"estimated: {basis} ({tail!r})")
