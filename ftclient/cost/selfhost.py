"""The self-hosted model: its size, and what training and serving it on a GPU offer costs.

* Self-hosted training: GPU-hours from a FLOPs model: FLOPs = k x params x tokens
  (k = 6 for full fine-tuning; 4 for LoRA/QLoRA, which skip the weight-gradient
  matmuls of the frozen base), divided by peak dense bf16 FLOP/s x an assumed
  utilisation (MFU), plus a fixed setup time; x the GPU's $/h.
* Self-hosted inference: GPU-seconds per query from a throughput model (prefill
  compute-bound, decode memory-bandwidth-bound at a batch size).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import default_model_of, here_backend
from ..errors import ConfigError
from ..modelsize import param_count, params_from_name
from ..prices import HOURS_PER_MONTH, Catalogue, GpuEntry
from ..tokens import ApproxCounter, get_counter
from .assumptions import Assumptions

DEFAULT_SELF_HOST_MODEL = "llama-3.1-8b"


@dataclass(frozen=True)
class SelfHostModel:
    """The model the self-hosted rows train and serve: its size and where that came from."""

    key: str  # as given: a catalogue key, 'default', an HF id or a path
    name: str  # as shown
    params_b: float
    params_basis: str
    params_exact: bool
    hf_id: str | None  # tokenizer source (an HF id or a folder)
    counter_ref: str  # what get_counter counts its tokens with

    def counter(self):
        """Its token counter: the model's own tokenizer when on disk, else the labelled approximation."""
        try:
            return get_counter(self.counter_ref, tokenizer=self.hf_id)
        except (ConfigError, ImportError) as e:
            why = getattr(e, "message", None) or str(e)
            return ApproxCounter(f"hf:{self.name}", reason=f"its tokenizer cannot be read offline ({why})")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.key, "name": self.name, "params_b": self.params_b, "params_basis": self.params_basis,
                "params_exact": self.params_exact}


def resolve_self_host_model(name: "str | SelfHostModel | None", cat: Catalogue) -> SelfHostModel:
    """The self-hosted rows' model and its parameter count.

    ``name``: a key of the catalogue's ``open_models`` (``llama-3.1-8b``); ``default`` (the
    default model of the backend that trains here, e.g. SmolLM2-135M-Instruct); an HF id; or a path (a model folder or a ``.gguf`` file).
    The count, best first: the model's own files on this machine (safetensors / GGUF headers,
    exact; else its config.json), the catalogue's ``open_models`` entry of that HF id, the size
    in the name. ConfigError when none gives one.
    """
    if isinstance(name, SelfHostModel):
        return name
    raw = (name or "default").strip() or "default"
    oms = cat.data.get("open_models") or {}
    if raw.lower() in oms:
        om = cat.open_model(raw)
        return SelfHostModel(key=om.key, name=om.key, params_b=om.params_b,
                             params_basis=f"price catalogue, open_models.{om.key} ({om.source})", params_exact=False,
                             hf_id=om.hf_id, counter_ref=f"hf:{om.hf_id}")
    is_default = raw.lower() == "default"
    path = Path(os.path.expanduser(raw))
    here = here_backend() if is_default or path.exists() else None  # reading it imports every backend class
    target = raw
    if is_default:
        target = default_model_of(here) or ""
        if not target:
            raise ConfigError("self-hosted rows: model 'default' is the default model of a backend that trains "
                              "on this machine, and no installed backend has one",
                              hint="Name the model instead (an HF id, a folder or a catalogue open model).")
        path = Path(os.path.expanduser(target))
    shown = f"default ({target.rsplit('/', 1)[-1]})" if is_default else (
        path.name.removesuffix(".gguf") if path.exists() else target)
    if is_default:
        counter_ref, tok = f"{here}:default", target
    elif path.exists() and here:
        counter_ref, tok = f"{here}:{target}", (target if path.is_dir() else None)
    else:
        counter_ref, tok = f"hf:{target}", target
    found = param_count(target)
    if found is None:
        om = cat.open_model_for(target)
        if om is not None:
            found_b, basis, exact = om.params_b, f"price catalogue, open_models.{om.key} ({om.source})", False
        else:
            by_name = params_from_name(target)
            if by_name is None:
                raise ConfigError(
                    f"self-hosted rows: the size of model {raw!r} is unknown (no config.json or weights on this "
                    "machine, no catalogue entry, no size in its name)",
                    hint="Give --self-host-model one of the catalogue's open models ("
                    + ", ".join(sorted(oms)) + "), or a model folder on this machine.")
            found_b, basis, exact = by_name.params_b, by_name.basis, False
    else:
        found_b, basis, exact = found.params_b, found.basis, found.exact
    return SelfHostModel(key=raw, name=shown, params_b=found_b, params_basis=basis, params_exact=exact,
                         hf_id=tok, counter_ref=counter_ref)


def is_self_host(ref: str, cat: Catalogue) -> bool:
    """Whether ``ref`` names a GPU offer (a ``HOST:GPU`` of the catalogue, or ``own:GPU``), not a hosted model."""
    host, sep, _ = ref.partition(":")
    if not sep:
        return False
    if host.lower() == "own":
        return True
    hosts = {k.split(":", 1)[0] for k in cat.gpu_refs()}
    return host.lower() in hosts and not cat.has_model(ref)


def train_memory_gb(params_b: float, adapter: str, a: Assumptions) -> float:
    """GB of GPU memory training a ``params_b``-billion model with ``adapter`` needs."""
    return params_b * a.train_bytes_per_param[adapter] * 1.2 + 2.0


def self_host_training(params_b: float, tokens: int, gpu: GpuEntry, adapter: str, a: Assumptions) -> dict[str, Any]:
    spec = gpu.spec
    if spec is None:
        raise ConfigError(f"{gpu.ref}: no GPU spec (peak TFLOPs) in the catalogue", hint="Add it under gpu_specs.")
    k = a.flops_per_param_token_full if adapter == "full" else a.flops_per_param_token_lora
    flops = k * params_b * 1e9 * tokens
    mfu = a.train_mfu * (a.qlora_mfu_factor if adapter == "qlora" else 1.0)
    compute_h = flops / (spec.bf16_tflops * 1e12 * mfu) / 3600.0
    duration = compute_h + a.setup_hours
    billed_h = duration if gpu.serverless else math.ceil(duration)
    cost = billed_h * gpu.usd_per_hour
    mem = train_memory_gb(params_b, adapter, a)
    return {
        "flops": flops,
        "flops_formula": f"{k:g} x {params_b:g}e9 params x {tokens:,} tokens",
        "peak_bf16_tflops": spec.bf16_tflops,
        "utilisation": mfu,
        "compute_hours": compute_h,
        "setup_hours": a.setup_hours,
        "duration_hours": duration,
        "billed_gpu_hours": billed_h,
        "billing": gpu.billing,
        "usd_per_gpu_hour": gpu.usd_per_hour,
        "cost_usd": cost,
        "memory_needed_gb": round(mem, 1),
        "gpu_memory_gb": spec.memory_gb,
        "fits": mem <= spec.memory_gb,
    }


def self_host_inference(params_b: float, gpu: GpuEntry, pin: float, pout: float, a: Assumptions) -> dict[str, Any]:
    """Serving a ``params_b``-billion model on ``gpu``: prefill and decode tokens/s, GPU-seconds per query, fit."""
    spec = gpu.spec
    assert spec is not None
    p = params_b * 1e9
    prefill_tps = spec.bf16_tflops * 1e12 * a.prefill_mfu / (2 * p)
    weight_bytes = a.serve_bytes_per_param * p
    decode_tps = min(
        a.decode_batch * spec.mem_bw_gbps * 1e9 * a.decode_bw_efficiency / weight_bytes,
        spec.bf16_tflops * 1e12 * a.decode_mfu_cap / (2 * p),
    )
    gpu_s = pin / prefill_tps + pout / decode_tps
    per_query = gpu_s / 3600.0 * gpu.usd_per_hour
    return {
        "prefill_tokens_per_s": prefill_tps,
        "decode_tokens_per_s": decode_tps,
        "gpu_seconds_per_query": gpu_s,
        "per_query_usd": per_query,
        "queries_per_gpu_month": HOURS_PER_MONTH * 3600.0 / gpu_s if gpu_s > 0 else float("inf"),
        "fits": weight_bytes / 1e9 * 1.1 <= spec.memory_gb,
    }
