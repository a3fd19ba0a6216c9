"""Fine-tuning cost: one estimate, and every backend side by side. Offline.

``estimate_cost(data, "openai:gpt-4.1-mini", epochs=3)`` -> :class:`CostEstimate`
``compare_costs(data, models=None, queries_per_month=...)`` -> :class:`CostComparison`

How each figure is made (also in docs/cost.md):

* Hosted training: billed tokens x price per 1M (a size tier's price for providers that
  price by model size, also for models the catalogue does not list), with a minimum
  charge where the catalogue gives one.
  Billed tokens = sum over examples of min(tokens, model's example limit) x epochs
  (the cookbook's ``n_billing_tokens_in_dataset x n_epochs``). Without ``epochs``,
  the cookbook's default-epochs heuristic (:func:`default_epochs`).
* Self-hosted training: GPU-hours from a FLOPs model: FLOPs = k x params x tokens
  (k = 6 for full fine-tuning; 4 for LoRA/QLoRA, which skip the weight-gradient
  matmuls of the frozen base), divided by peak dense bf16 FLOP/s x an assumed
  utilisation (MFU), plus a fixed setup time; x the GPU's $/h.
* Inference: hosted per token (prompt x input price + completion x output price);
  a dedicated endpoint (e.g. Together LoRA models) costs its hours, always on;
  self-hosted by GPU-seconds per query from a throughput model (prefill
  compute-bound, decode memory-bandwidth-bound at a batch size), per-second
  serverless hosts billed for busy time, hourly instances kept on all month.
* Break-even: the monthly query volume above which a self-hosted row's inference
  costs less than the cheapest per-token hosted option, or "never".
* Local training (``local:MODEL``, :func:`estimate_local`): tokens with the model's own
  tokenizer; time from a calibration on this machine (a few real training steps,
  ``ftclient.local_backend.calibrate``), or unknown; cost = hours x the $/h you give.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import ConfigError, DataError, FtcError, UsageError
from .prices import HOURS_PER_MONTH, Catalogue, GpuEntry, ModelEntry, load_catalogue
from .tokens import ApproxCounter, HFCounter, OpenAICounter, as_records, get_counter

# ----------------------------------------------------------------- constants
# OpenAI cookbook 'Chat_finetuning_data_prep': default epochs heuristic.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

DEFAULT_MODELS = [
    "openai:gpt-4.1-mini",
    "openai:gpt-4o-mini",
    "openai:gpt-4.1-nano",
    "together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct",
    "modal:h100",
    "runpod:a100-community",
    "runpod:rtx4090-community",
    "lambda:h100",
]
DEFAULT_SELF_HOST_MODEL = "llama-3.1-8b"
DEFAULT_QUERIES_PER_MONTH = 100_000


@dataclass(frozen=True)
class Assumptions:
    """The assumed figures of the self-hosting model (all shown in the output)."""

    flops_per_param_token_full: float = 6.0  # forward 2 + backward 4
    flops_per_param_token_lora: float = 4.0  # no weight gradients for the frozen base
    train_mfu: float = 0.35  # achieved / peak dense bf16 FLOP/s when training
    qlora_mfu_factor: float = 0.75  # 4-bit dequantisation overhead
    setup_hours: float = 0.25  # start, download weights, load, save the adapter
    prefill_mfu: float = 0.5  # prompt processing, compute-bound
    decode_batch: int = 32  # concurrent sequences when serving
    decode_bw_efficiency: float = 0.6  # achieved / peak memory bandwidth
    decode_mfu_cap: float = 0.5  # decode can't beat compute either
    serve_bytes_per_param: float = 2.0  # bf16 weights
    # Serverless (per-second) GPUs: a container stays up this long after its last
    # request before it scales to zero, and each cold start bills its start-up time.
    serverless_scaledown_s: float = 60.0
    serverless_cold_start_s: float = 30.0
    train_bytes_per_param: dict = field(
        default_factory=lambda: {"full": 16.0, "lora": 2.0, "qlora": 0.6}
    )  # weights(+grads+Adam for full); + 20% and 2 GB for activations
    default_queries_per_month: int = DEFAULT_QUERIES_PER_MONTH

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ASSUMPTIONS = Assumptions()


def default_epochs(n_examples: int) -> int:
    """The cookbook's default-epochs heuristic (what OpenAI's ``auto`` approximates)."""
    n = TARGET_EPOCHS
    if n_examples <= 0:
        return n
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return n


def check_args(epochs: int | None, method: str, adapter: str) -> tuple[str, str]:
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise UsageError(f"epochs must be a whole number >= 1, not {epochs!r}")
    m, a = method.lower(), adapter.lower()
    if m not in ("sft", "dpo"):
        raise UsageError(f"unknown method {method!r}", hint="Use sft or dpo.")
    if a not in ("lora", "qlora", "full"):
        raise UsageError(f"unknown adapter {adapter!r}", hint="Use lora, qlora or full.")
    return m, a


def catalogue_for(prices: Catalogue | str | os.PathLike | None, today) -> Catalogue:
    """``prices`` when it is a Catalogue, else the catalogue loaded from that file (None: the bundled one)."""
    if isinstance(prices, Catalogue):
        return prices
    return load_catalogue(prices, today=today)


# ------------------------------------------------------- the self-hosted model
#: What the local backend's ``default`` base model is (ftclient.local_backend.models).
LOCAL_DEFAULT_MODEL_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


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

    ``name``: a key of the catalogue's ``open_models`` (``llama-3.1-8b``); ``default`` (the local
    backend's SmolLM2-135M-Instruct); an HF id; or a path (a model folder or a ``.gguf`` file).
    The count, best first: the model's own files on this machine (safetensors / GGUF headers,
    exact; else its config.json), the catalogue's ``open_models`` entry of that HF id, the size
    in the name. ConfigError when none gives one.
    """
    from .modelsize import param_count, params_from_name

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
    target = LOCAL_DEFAULT_MODEL_HF_ID if is_default else raw
    path = Path(os.path.expanduser(target))
    shown = f"default ({target.rsplit('/', 1)[-1]})" if is_default else (
        path.name.removesuffix(".gguf") if path.exists() else target)
    if is_default:
        counter_ref, tok = "local:default", LOCAL_DEFAULT_MODEL_HF_ID
    elif path.exists():
        counter_ref, tok = f"local:{target}", (target if path.is_dir() else None)
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


# ------------------------------------------------------------ token counting
class _Counts:
    """Per-record (total, prompt, completion) counts, computed once per tokenizer; for a
    pre-tokenized Parquet file (``pretokenized``), the file's own exact counts, whatever
    the counter."""

    def __init__(self, records: list[dict], pretokenized: Any = None):
        self.records = records
        self.pretokenized = pretokenized  # ftclient.data.parquet.PretokenizedCounts
        self._cache: dict[tuple, tuple[list[int], list[int], list[int]]] = {}

    @classmethod
    def of(cls, path_or_records: Any) -> "_Counts":
        """The counts of a JSONL file or records, or of a pre-tokenized Parquet file."""
        from .data.parquet import is_parquet_path, read_counts

        if is_parquet_path(path_or_records):
            return cls([], read_counts(path_or_records))
        return cls(as_records(path_or_records))

    @property
    def n(self) -> int:
        return self.pretokenized.rows if self.pretokenized is not None else len(self.records)

    def counter(self, entry: ModelEntry):
        """The counter of a hosted model: its tokenizer's, or the pre-tokenized file itself."""
        if self.pretokenized is not None:
            return self.pretokenized
        return get_counter(entry.ref, tokenizer=entry.hf_id)

    def split(self, counter) -> tuple[list[int], list[int], list[int]]:
        if self.pretokenized is not None:
            return self.pretokenized.split()  # type: ignore[return-value]
        if isinstance(counter, ApproxCounter):
            return counter.scale(*self.split(counter._base))
        if isinstance(counter, OpenAICounter):
            key: tuple = ("openai", counter.encoding_name)
        elif isinstance(counter, HFCounter):
            key = ("hf", counter.source)
        else:
            key = ("other", id(counter))
        if key not in self._cache:
            self._cache[key] = counter.count_split(self.records)
        return self._cache[key]


# ------------------------------------------------------------------ results
@dataclass
class CostEstimate:
    model: str
    provider: str
    kind: str  # hosted | self-hosted
    method: str
    adapter: str
    examples: int
    tokens_per_epoch: int
    epochs: int
    epochs_basis: str
    billed_tokens: int
    cost_usd: float
    cost_before_minimum_usd: float
    min_charge_usd: float
    min_charge_applied: bool
    token_count_basis: str
    token_count_exact: bool
    cost_exact: bool
    cost_basis: str
    price: dict[str, Any]
    examples_over_limit: int = 0
    max_example_tokens: int | None = None
    caveats: list[str] = field(default_factory=list)
    self_hosted: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost_usd"] = round(self.cost_usd, 4)
        d["cost_before_minimum_usd"] = round(self.cost_before_minimum_usd, 4)
        if d["self_hosted"] is None:
            del d["self_hosted"]
        return d


@dataclass
class CompareRow:
    backend: str  # what the user passed (model or GPU offer)
    label: str
    kind: str  # hosted | self-hosted (a catalogue GPU offer) | local (this machine)
    model: str
    method: str
    adapter: str
    epochs: int
    billed_tokens: int
    training_cost_usd: float | None  # None: unknown (a local row with a price but no measured time)
    training_basis: str
    training_exact: bool
    min_charge_applied: bool
    duration_hours: float | None
    inference_per_1k_usd: float | None
    inference_monthly_usd: float | None
    inference_basis: str
    inference_exact: bool
    serving: str
    break_even_queries_per_month: float | str | None
    break_even_basis: str | None
    within_budget: bool | None
    token_count_basis: str
    token_count_exact: bool
    price: dict[str, Any]
    caveats: list[str] = field(default_factory=list)
    gpu_hours: float | None = None
    training_flops: float | None = None
    utilisation: float | None = None
    usd_per_gpu_hour: float | None = None
    # internal, for break-even: cost per query (linear part) and fixed monthly cost
    _per_query_usd: float | None = field(default=None, repr=False)
    _fixed_monthly_usd: float | None = field(default=None, repr=False)
    _queries_per_gpu_month: float | None = field(default=None, repr=False)
    _monthly_fn: Any = field(default=None, repr=False, compare=False)  # monthly cost at a volume, if not linear

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        for k in ("training_cost_usd", "inference_per_1k_usd", "inference_monthly_usd", "duration_hours", "gpu_hours"):
            if isinstance(d.get(k), float):
                d[k] = round(d[k], 4)
        if isinstance(d.get("break_even_queries_per_month"), float):
            d["break_even_queries_per_month"] = round(d["break_even_queries_per_month"])
        return d


@dataclass
class CostComparison:
    rows: list[CompareRow]
    examples: int
    epochs: int
    epochs_basis: str
    queries_per_month: int
    tokens_per_query: dict[str, Any]
    budget_usd: float | None
    self_host_model: str
    assumptions: Assumptions
    catalogue_files: list[str]
    self_host: dict[str, Any] = field(default_factory=dict)  # the self-hosted rows' model: size and its basis
    # default backends left out, each {"backend", "reason"} (e.g. those that cannot take a Parquet file)
    not_compared: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "epochs": self.epochs,
            "epochs_basis": self.epochs_basis,
            "queries_per_month": self.queries_per_month,
            "tokens_per_query": self.tokens_per_query,
            "budget_usd": self.budget_usd,
            "self_host_model": self.self_host_model,
            "self_host": self.self_host,
            "assumptions": self.assumptions.to_dict(),
            "price_files": self.catalogue_files,
            "rows": [r.to_dict() for r in self.rows],
            "not_compared": self.not_compared,
        }


# ------------------------------------------------------------------ helpers
def _is_self_host(ref: str, cat: Catalogue) -> bool:
    host, sep, _ = ref.partition(":")
    if not sep:
        return False
    if host.lower() == "own":
        return True
    hosts = {k.split(":", 1)[0] for k in cat.gpu_refs()}
    return host.lower() in hosts and not cat.has_model(ref)


def epochs_for(epochs: int | None, n: int) -> tuple[int, str]:
    if epochs is not None:
        return epochs, "given"
    e = default_epochs(n)
    return e, (
        f"default: OpenAI cookbook heuristic ({TARGET_EPOCHS} epochs, raised to reach "
        f"{MIN_TARGET_EXAMPLES} or lowered to stay under {MAX_TARGET_EXAMPLES} example passes)"
    )


def _hosted_training(entry: ModelEntry, totals: Sequence[int], epochs: int, method: str, adapter: str):
    cap = entry.max_example_tokens
    if cap:
        per_epoch = sum(t if t < cap else cap for t in totals)
        over = sum(1 for t in totals if t > cap)
    else:
        per_epoch, over = sum(totals), 0
    billed = per_epoch * epochs
    price = entry.training_price(method, adapter)
    raw = billed / 1e6 * price
    cost = max(raw, entry.min_charge_usd)
    applied = entry.min_charge_usd > 0 and raw < entry.min_charge_usd
    basis = f"{billed:,} billed tokens x ${price:g}/1M"
    tier = entry.tier_basis(method, adapter)
    if tier:
        basis += f" ({tier})"
    if cap:
        basis += f" (each example capped at {cap:,} tokens)"
    if applied:
        basis += f"; minimum charge ${entry.min_charge_usd:g} applied"
    return per_epoch, over, billed, price, raw, cost, applied, basis


def _train_memory_gb(params_b: float, adapter: str, a: Assumptions) -> float:
    return params_b * a.train_bytes_per_param[adapter] * 1.2 + 2.0


def _self_host_training(params_b: float, tokens: int, gpu: GpuEntry, adapter: str, a: Assumptions) -> dict[str, Any]:
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
    mem = _train_memory_gb(params_b, adapter, a)
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


# ------------------------------------------------------------------- estimate
def estimate_cost(
    path_or_records: str | os.PathLike | Iterable[dict],
    model_ref: str,
    *,
    epochs: int | None = None,
    method: str = "sft",
    adapter: str = "lora",
    prices: Catalogue | str | os.PathLike | None = None,
    self_host_model: "str | SelfHostModel" = DEFAULT_SELF_HOST_MODEL,
    today=None,
    _counts: _Counts | None = None,
) -> CostEstimate:
    """Training cost of fine-tuning ``model_ref`` on the data (a JSONL path or records, or
    for Together a pre-tokenized Parquet file: its exact token counts)."""
    method, adapter = check_args(epochs, method, adapter)
    cat = catalogue_for(prices, today)
    if _counts is None:
        _check_parquet(path_or_records, [model_ref], cat, method)
    counts = _counts or _Counts.of(path_or_records)
    n = counts.n
    ep, ep_basis = epochs_for(epochs, n)
    if _is_self_host(model_ref, cat):
        om = resolve_self_host_model(self_host_model, cat)
        gpu = cat.gpu(model_ref)
        counter = om.counter()
        totals = counts.split(counter)[0]
        per_epoch = sum(totals)
        billed = per_epoch * ep
        sh = _self_host_training(om.params_b, billed, gpu, adapter, ASSUMPTIONS)
        sh["params_basis"] = om.params_basis
        caveats = [] if sh["fits"] else [
            f"needs ~{sh['memory_needed_gb']} GB for {adapter}, the GPU has {sh['gpu_memory_gb']:g} GB"
        ]
        if gpu.stale:
            caveats.append(f"GPU price older than 90 days (as_of {gpu.as_of})")
        return CostEstimate(
            model=f"{model_ref} ({om.name})",
            provider=gpu.host,
            kind="self-hosted",
            method=method,
            adapter=adapter,
            examples=n,
            tokens_per_epoch=per_epoch,
            epochs=ep,
            epochs_basis=ep_basis,
            billed_tokens=billed,
            cost_usd=sh["cost_usd"],
            cost_before_minimum_usd=sh["cost_usd"],
            min_charge_usd=0.0,
            min_charge_applied=False,
            token_count_basis=counter.basis,
            token_count_exact=counter.exact,
            cost_exact=False,
            cost_basis=(
                f"estimated: {sh['flops_formula']} = {sh['flops']:.3g} FLOPs / ({sh['peak_bf16_tflops']:g} TFLOP/s x "
                f"{sh['utilisation']:.0%} utilisation) + {sh['setup_hours']:g} h setup = {sh['duration_hours']:.2f} h; "
                f"billed {sh['billed_gpu_hours']:.2f} GPU-h x ${gpu.usd_per_hour:g}/h"
            ),
            price={"usd_per_gpu_hour": gpu.usd_per_hour, "billing": gpu.billing, **gpu.provenance()},
            caveats=caveats,
            self_hosted=sh,
        )
    entry = cat.model(model_ref)
    counter = counts.counter(entry)
    totals = counts.split(counter)[0]
    per_epoch, over, billed, price, raw, cost, applied, basis = _hosted_training(entry, totals, ep, method, adapter)
    caveats = entry.caveats()
    if over:
        caveats.append(f"{over} example(s) over the {entry.max_example_tokens:,}-token limit (billed at the cap)")
    return CostEstimate(
        model=entry.ref,
        provider=entry.provider,
        kind="hosted",
        method=method,
        adapter=adapter,
        examples=n,
        tokens_per_epoch=per_epoch,
        epochs=ep,
        epochs_basis=ep_basis,
        billed_tokens=billed,
        cost_usd=cost,
        cost_before_minimum_usd=raw,
        min_charge_usd=entry.min_charge_usd,
        min_charge_applied=applied,
        token_count_basis=counter.basis,
        token_count_exact=counter.exact,
        cost_exact=bool(counter.exact),
        cost_basis=("" if counter.exact else "estimated tokens: ") + basis,
        price={
            "training_per_1m": price,
            "tier": entry.tier_label(),
            **entry.provenance(),
        },
        examples_over_limit=over,
        max_example_tokens=entry.max_example_tokens,
        caveats=caveats,
    )


# ---------------------------------------------------------------------- local
# Local training (``local:MODEL``): what the run costs is its wall time on this machine x what an
# hour of it costs you. Nothing here imports torch; the time comes from a calibration (a few real
# steps, ``ftc cost estimate ... --calibrate``, ftclient.local_backend.calibrate) or is unknown.

LOCAL_PREFIX = "local:"


def is_local_ref(model_ref: str | None) -> bool:
    return isinstance(model_ref, str) and model_ref.strip().lower().startswith(LOCAL_PREFIX)


def local_gpu_price(
    *,
    usd_per_hour: float | None = None,
    spec: Any = None,
    prices: Catalogue | str | os.PathLike | None = None,
    today=None,
) -> dict[str, Any] | None:
    """What an hour of local training costs, or None (your own machine, no price given).

    In order: ``usd_per_hour`` (``--gpu-price-per-hour``); the spec's
    ``local.gpu_price_per_hour``; the spec's ``local.gpu``, priced from the catalogue: a
    ``HOST:GPU`` offer (``runpod:rtx4090-community``), or a GPU name (``rtx4090``: the
    cheapest offer of that GPU). A price you give is billed by the exact duration; a
    catalogue offer bills as cost.py bills it (hourly instances in whole hours).
    """
    if usd_per_hour is not None:
        if usd_per_hour < 0:
            raise UsageError(f"GPU price must be >= 0, not {usd_per_hour!r}")
        return {"usd_per_hour": float(usd_per_hour), "billing": "exact", "source": "given (--gpu-price-per-hour)"}
    loc = getattr(spec, "local", None)
    if loc is None:
        return None
    if loc.gpu_price_per_hour is not None:
        return {"usd_per_hour": float(loc.gpu_price_per_hour), "billing": "exact",
                "source": "local.gpu_price_per_hour in the spec"}
    if not loc.gpu:
        return None
    cat = catalogue_for(prices, today)
    ref = loc.gpu.strip().lower()
    if ":" in ref:
        gpu = cat.gpu(ref)
    else:
        offers = []
        for r in cat.gpu_refs():
            g = cat.gpu(r)
            if (g.spec is not None and g.spec.name == ref) or g.gpu == ref or g.gpu.startswith(ref + "-"):
                offers.append(g)
        if not offers:
            raise ConfigError(
                f"local.gpu {loc.gpu!r}: no offer of that GPU in the price catalogue",
                hint="Give local.gpu_price_per_hour (or --gpu-price-per-hour), or a HOST:GPU offer, e.g. "
                + ", ".join(cat.gpu_refs()[:3]) + ".",
            )
        gpu = min(offers, key=lambda g: g.usd_per_hour)
    prov = gpu.provenance()
    return {**prov, "price_page": prov.get("source"), "usd_per_hour": gpu.usd_per_hour, "billing": gpu.billing,
            "offer": gpu.ref, "source": f"{gpu.ref} in the price catalogue (local.gpu {loc.gpu!r})"}


def local_training_cost(seconds: float, price: dict[str, Any]) -> dict[str, Any]:
    """Cost of ``seconds`` of local training at ``price`` (see :func:`local_gpu_price`):
    hours x $/h; an hourly catalogue offer bills whole hours."""
    hours = max(seconds, 0.0) / 3600.0
    usd = float(price["usd_per_hour"])
    billing = price.get("billing", "exact")
    billed = math.ceil(hours) if billing == "hourly" and hours > 0 else hours
    cost = billed * usd
    how = f"{hours:.4g} h" if billed == hours else f"{hours:.4g} h, billed as {billed:g} h (hourly offer)"
    return {"hours": hours, "billed_hours": billed, "usd_per_hour": usd, "billing": billing, "cost_usd": cost,
            "basis": f"{how} x ${usd:g}/h ({price.get('source', 'given')})"}


@dataclass
class LocalCostEstimate(CostEstimate):
    """A local run's estimate: tokens and steps from the data, time from a calibration (or unknown)."""

    duration_s: float | None = None
    time_basis: str = ""
    optimizer_steps: int | None = None
    steps_basis: str = ""
    rows: int | None = None
    batch_size: int | None = None
    device: str | None = None
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("cost_usd", "cost_before_minimum_usd"):
            if isinstance(d.get(k), float):
                d[k] = round(d[k], 4)
        if d["self_hosted"] is None:
            del d["self_hosted"]
        return d


def estimate_local(
    path: str | os.PathLike,
    model_ref: str,
    *,
    epochs: int | None = None,
    method: str | None = None,
    adapter: str | None = None,
    batch_size: int | None = None,
    max_seq_len: int | None = None,
    spec: Any = None,
    usd_per_hour: float | None = None,
    prices: Catalogue | str | os.PathLike | None = None,
    today=None,
) -> LocalCostEstimate:
    """Training estimate of a run on this machine (``local:default``, ``local:PATH``), offline:
    asked of the backend the reference names (its ``estimate_file``), see there."""
    from .backends import get_backend

    backend = get_backend(model_ref.partition(":")[0] if ":" in model_ref else "local")
    return backend.estimate_file(path, model_ref, epochs=epochs, method=method, adapter=adapter,
                                 batch_size=batch_size, max_seq_len=max_seq_len, spec=spec,
                                 usd_per_hour=usd_per_hour, prices=prices, today=today)


# -------------------------------------------------------------------- compare
def _parse_models(models: str | Sequence[str] | None) -> list[str]:
    if models is None:
        return list(DEFAULT_MODELS)
    if isinstance(models, str):
        models = models.split(",")
    out = [m.strip() for m in models if m and m.strip()]
    if not out:
        raise UsageError("no models given", hint="e.g. --models openai:gpt-4.1-mini,modal:h100")
    return list(dict.fromkeys(out))


def compare_costs(
    path_or_records: str | os.PathLike | Iterable[dict],
    models: str | Sequence[str] | None = None,
    *,
    epochs: int | None = None,
    method: str = "sft",
    adapter: str = "lora",
    queries_per_month: int | None = None,
    tokens_per_query_in: int | None = None,
    tokens_per_query_out: int | None = None,
    gpu_prices: dict[str, float] | None = None,
    budget_usd: float | None = None,
    prices: Catalogue | str | os.PathLike | None = None,
    self_host_model: "str | SelfHostModel" = DEFAULT_SELF_HOST_MODEL,
    today=None,
    assumptions: Assumptions = ASSUMPTIONS,
    local_usd_per_hour: float | None = None,
    spec: Any = None,
) -> CostComparison:
    """Every backend side by side: training, inference per 1K queries and per month,
    break-even volume of self-hosting, budget check.

    A ``local:MODEL`` ref adds this machine's row: exact tokens and optimizer steps, the time
    of a cached calibration (``ftc cost estimate --calibrate``) or unknown, and its cost at
    ``local_usd_per_hour`` (or the ``spec``'s local price); see :func:`estimate_local`. Its
    serving cost is not estimated here: ``ftc eval`` measures it and ``ftc compare`` prices it."""
    method, adapter = check_args(epochs, method, adapter)
    q = DEFAULT_QUERIES_PER_MONTH if queries_per_month is None else queries_per_month
    if not isinstance(q, int) or isinstance(q, bool) or q < 0:
        raise UsageError(f"queries per month must be a whole number >= 0, not {queries_per_month!r}")
    for name, v in (("tokens per query in", tokens_per_query_in), ("tokens per query out", tokens_per_query_out)):
        if v is not None and (not isinstance(v, int) or v < 0):
            raise UsageError(f"{name} must be a whole number >= 0, not {v!r}")
    if budget_usd is not None:
        from .budget import check_budget

        budget_usd = check_budget(budget_usd)
    cat = catalogue_for(prices, today)
    refs = _parse_models(models)
    if models is None:  # the defaults: only models that can still be fine-tuned today
        refs = [r for r in refs if not (cat.has_model(r) and cat.model(r).training_closed())]
    not_compared: list[dict[str, str]] = []
    if models is None:  # a pre-tokenized Parquet file: the defaults that can train on it
        refs, not_compared = _parquet_defaults(path_or_records, refs, cat, spec)
    for ref, usd in (gpu_prices or {}).items():
        if usd is None or usd < 0:
            raise UsageError(f"{ref}: GPU price must be >= 0")
        cat.set_gpu_price(ref, usd)
        if ref.lower() not in [r.lower() for r in refs]:
            refs.append(ref.lower())
    # Validate every ref before counting (fast failure with the closest names).
    for ref in refs:
        if is_local_ref(ref):
            from .backends import get_backend

            local = get_backend(ref.partition(":")[0])
            local.resolve_model(local.model_name(ref))
        elif _is_self_host(ref, cat):
            cat.gpu(ref)
        else:
            cat.model(ref)
    _check_parquet(path_or_records, refs, cat, method)  # before it is read
    om = resolve_self_host_model(self_host_model, cat)
    counts = _Counts.of(path_or_records)
    n = counts.n
    ep, ep_basis = epochs_for(epochs, n)
    rows: list[CompareRow] = []
    local_data: Path | None = None
    for ref in refs:
        if is_local_ref(ref):
            if local_data is None:
                local_data = _data_file(path_or_records, counts.records)
            est_l = estimate_local(local_data, ref, epochs=ep, method=method, adapter=adapter, spec=spec,
                                   usd_per_hour=local_usd_per_hour, prices=cat, today=today)
            rows.append(_local_row(ref, est_l, budget_usd))
            continue
        est = estimate_cost(
            None, ref, epochs=ep, method=method, adapter=adapter, prices=cat,
            self_host_model=om, _counts=counts,
        )
        if est.kind == "hosted":
            rows.append(_hosted_row(ref, est, cat.model(ref), counts, q, tokens_per_query_in, tokens_per_query_out, budget_usd))
        else:
            rows.append(_self_row(ref, est, cat.gpu(ref), om, counts, q, tokens_per_query_in, tokens_per_query_out, budget_usd, assumptions))
    _break_even(rows, q)
    tpq: dict[str, Any] = (
        {"input": tokens_per_query_in, "output": tokens_per_query_out, "basis": "given"}
        if tokens_per_query_in is not None and tokens_per_query_out is not None
        else {
            "input": tokens_per_query_in,
            "output": tokens_per_query_out,
            "basis": "per row, from the data: mean prompt tokens (messages before the last assistant "
            "one) and mean completion tokens (the last assistant message)"
            if counts.pretokenized is None else counts.pretokenized.query_basis,
        }
    )
    return CostComparison(
        rows=rows,
        examples=n,
        epochs=ep,
        epochs_basis=ep_basis,
        queries_per_month=q,
        tokens_per_query=tpq,
        budget_usd=budget_usd,
        self_host_model=om.name,
        self_host=om.to_dict(),
        assumptions=assumptions,
        catalogue_files=cat.files,
        not_compared=not_compared,
    )


def _parquet_refusal(ref: str, cat: Catalogue) -> str | None:
    """What cannot train ``ref`` on a pre-tokenized Parquet file (e.g. "OpenAI fine-tuning");
    None when it can."""
    from .data.parquet import parquet_providers

    if is_local_ref(ref):
        return "local training"
    if _is_self_host(ref, cat):
        return "self-hosted training (ftc's local training stack)"
    from .backends import backend_attr

    provider = ref.partition(":")[0].strip().lower()
    name = backend_attr(provider, "display") or provider.capitalize()
    return None if provider in parquet_providers() else f"{name} fine-tuning"


def _parquet_defaults(path_or_records: Any, refs: list[str], cat: Catalogue,
                      spec: Any) -> tuple[list[str], list[dict[str, str]]]:
    """The default refs for a pre-tokenized Parquet file (unchanged for other data): those
    that can train on it -- the spec's Together model when it has one that ftc can price,
    since the file's token ids are that model's -- and the others with the reason."""
    from .data.parquet import is_parquet_path

    if not is_parquet_path(path_or_records):
        return refs, []
    skipped: list[dict[str, str]] = []
    own = spec.model_for("together") if spec is not None and hasattr(spec, "model_for") else None
    chosen = None
    if own and own != "default":
        chosen = f"together:{own}"
        try:
            cat.model(chosen).training_price("sft", getattr(spec, "adapter", "lora") or "lora")
        except FtcError as e:
            skipped.append({"backend": chosen, "reason": f"ftc cannot price it: {e.message}"})
            chosen = None
    keep: list[str] = [chosen] if chosen else []
    for r in refs:
        why = _parquet_refusal(r, cat)
        if why is not None:
            skipped.append({"backend": r, "reason": f"{why} needs JSONL chat records, not pre-tokenized Parquet"})
        elif chosen is not None and r.lower() != chosen.lower():
            skipped.append({"backend": r, "reason": f"the file's token ids are for the spec's model, {own}"})
        elif r not in keep:
            keep.append(r)
    if not keep:
        raise DataError(f"{path_or_records}: a pre-tokenized Parquet file, and none of the default backends can "
                        "train on it", hint="Name a Together model: --models together:MODEL.")
    return keep, skipped


def _check_parquet(path_or_records: Any, refs: Sequence[str], cat: Catalogue, method: str) -> bool:
    """For a pre-tokenized Parquet file: DataError (before it is read) when a ref cannot train
    on it or the method is not SFT. Returns whether the data is such a file."""
    from .data.parquet import is_parquet_path, not_jsonl_error

    if not is_parquet_path(path_or_records):
        return False
    refused = [f"{why} ({r})" for r, why in ((r, _parquet_refusal(r, cat)) for r in refs) if why]
    if refused:
        raise not_jsonl_error(path_or_records, " and ".join(refused), plural=len(refused) > 1)
    if method != "sft":
        raise DataError(f"{path_or_records}: pre-tokenized Parquet data is for SFT; {method.upper()} needs "
                        "preference records in JSONL", hint="Use --method sft, or give DPO records as JSONL.")
    return True


def _query_tokens(counts: _Counts, counter, tin, tout) -> tuple[float, float, bool]:
    if tin is not None and tout is not None:
        return float(tin), float(tout), True
    _, prompt, completion = counts.split(counter)
    n = len(prompt)
    pin = float(tin) if tin is not None else sum(prompt) / n
    pout = float(tout) if tout is not None else sum(completion) / n
    return pin, pout, False


def _budget(cost: float | None, budget: float | None) -> bool | None:
    from .budget import usable_usd

    if budget is None or cost is None:
        return None
    return usable_usd(cost) and cost <= budget + 1e-9  # NaN/inf/negative never passes a budget


def _data_file(path_or_records: Any, records: list[dict]) -> Path:
    """The data as a file (a local estimate is keyed by the file's sha256): the given path, or
    the records written once to a content-named file under ftc's cache."""
    if isinstance(path_or_records, (str, os.PathLike)):
        return Path(path_or_records)
    import hashlib

    from .paths import ftc_home

    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    d = ftc_home() / "cache" / "compare-data"
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
    if not f.is_file():
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, f)
    return f


def _local_row(ref: str, est: "LocalCostEstimate", budget: float | None) -> CompareRow:
    """This machine's row: training from :func:`estimate_local`; serving is measured, not estimated."""
    caveats = [c for c in est.caveats if "--calibrate" not in c]
    if est.duration_s is None:
        caveats.append(f"training time unknown until measured: run `ftc cost estimate FILE --model {ref} "
                       "--calibrate` once (cached)")
    return CompareRow(
        backend=ref,
        label=f"{est.model} (this machine, {est.adapter})",
        kind="local",
        model=est.model,
        **_estimate_fields(est, budget),
        training_exact=False,
        min_charge_applied=False,
        duration_hours=None if est.duration_s is None else est.duration_s / 3600.0,
        inference_per_1k_usd=None,
        inference_monthly_usd=None,
        inference_basis=("not estimated: a small local model's serving speed is measured, not assumed; "
                         "`ftc eval local:JOB --data EVAL.jsonl` measures it and `ftc compare` prices it"),
        inference_exact=False,
        serving=("this machine; training time " + ("calibrated" if est.duration_s is not None else "not measured yet")
                 + "; serving cost measured by `ftc eval`, not estimated here"),
        break_even_queries_per_month=None,
        break_even_basis="needs a measured serving cost (ftc eval, then ftc compare)",
        price={"stale": False, **est.price},  # a price you give does not go stale; a catalogue offer says
        caveats=caveats,
        usd_per_gpu_hour=est.price.get("usd_per_hour") if est.price else None,
    )


def _hosted_row(ref, est: CostEstimate, entry: ModelEntry, counts, q, tin, tout, budget) -> CompareRow:
    counter = counts.counter(entry)
    pin, pout, given = _query_tokens(counts, counter, tin, tout)
    caveats = list(est.caveats)
    label = _short(entry.ref) + (" (retired)" if entry.training_closed() or entry.shut_down() else "")
    dedicated = entry.serving == "dedicated"
    fixed: float | None
    if entry.shut_down():
        # Its fine-tuned models no longer answer: nothing to serve, no serving cost to compare.
        fixed = monthly = per_1k = per_query = None
        inf_basis = f"none: the provider shut its fine-tuned models down on {entry.inference_shutdown}"
        serving, exact = "shut down", False
    elif (entry.dedicated_endpoint_per_hour if dedicated else entry.inference_input_per_1m) is None:
        fixed = monthly = per_1k = per_query = None
        inf_basis = (f"unknown: the catalogue has no {'dedicated-endpoint' if dedicated else 'inference'} price "
                     f"for {entry.ref}")
        serving, exact = ("dedicated endpoint" if dedicated else "serverless, per token"), False
    elif dedicated:
        fixed = entry.dedicated_endpoint_per_hour * HOURS_PER_MONTH
        monthly = fixed
        per_1k = monthly / q * 1000 if q else None
        per_query = None
        inf_basis = (
            f"estimated: dedicated endpoint always on, ${entry.dedicated_endpoint_per_hour:g}/h x {HOURS_PER_MONTH:g} h/month"
            " (LoRA fine-tuned models need one; capacity assumed sufficient)"
        )
        serving = "dedicated endpoint"
        exact = False
    else:
        pi, po = entry.inference_input_per_1m or 0.0, entry.inference_output_per_1m or 0.0
        per_query = (pin * pi + pout * po) / 1e6
        fixed = 0.0
        monthly = per_query * q
        per_1k = per_query * 1000
        inf_basis = (
            f"{pin:.1f} input x ${pi:g}/1M + {pout:.1f} output tokens x ${po:g}/1M per query"
            + (" (given)" if given else " (means of the data)")
        )
        if not given or not counter.exact:
            inf_basis = "estimated: " + inf_basis
        serving = "serverless, per token"
        exact = given
    return CompareRow(
        backend=ref,
        label=label,
        kind="hosted",
        model=entry.ref,
        **_estimate_fields(est, budget),
        training_exact=est.cost_exact,
        min_charge_applied=est.min_charge_applied,
        duration_hours=None,
        inference_per_1k_usd=per_1k,
        inference_monthly_usd=monthly,
        inference_basis=inf_basis,
        inference_exact=exact,
        serving=serving,
        break_even_queries_per_month=None,
        break_even_basis=None,
        price={**est.price, "inference_input_per_1m": entry.inference_input_per_1m,
               "inference_output_per_1m": entry.inference_output_per_1m,
               "dedicated_endpoint_per_hour": entry.dedicated_endpoint_per_hour},
        caveats=caveats,
        _per_query_usd=per_query,
        _fixed_monthly_usd=fixed,
    )


def _estimate_fields(est: CostEstimate, budget: float | None) -> dict[str, Any]:
    """The fields every comparison row takes from its training estimate."""
    return {
        "method": est.method,
        "adapter": est.adapter,
        "epochs": est.epochs,
        "billed_tokens": est.billed_tokens,
        "training_cost_usd": est.cost_usd,
        "training_basis": est.cost_basis,
        "within_budget": _budget(est.cost_usd, budget),
        "token_count_basis": est.token_count_basis,
        "token_count_exact": est.token_count_exact,
    }


def _self_row(ref, est: CostEstimate, gpu: GpuEntry, om, counts, q, tin, tout, budget, a: Assumptions) -> CompareRow:
    sh = est.self_hosted or {}
    counter = om.counter()
    pin, pout, _ = _query_tokens(counts, counter, tin, tout)
    inf = self_host_inference(om.params_b, gpu, pin, pout, a)
    per_q = inf["per_query_usd"]
    if gpu.serverless:
        hours = serverless_gpu_hours(q, inf["gpu_seconds_per_query"], a)
        monthly = hours * gpu.usd_per_hour
        fixed = 0.0
        per_query = per_q
        serving = "serverless GPU, per second (scales to zero)"
        inf_basis = (
            f"estimated: {hours:,.1f} GPU-h/month x ${gpu.usd_per_hour:g}/h; queries arriving at random, a container "
            f"stays up {a.serverless_scaledown_s:g} s after each request and bills {a.serverless_cold_start_s:g} s per "
            f"cold start; busy time {inf['gpu_seconds_per_query'] * 1000:.1f} GPU-ms per query ({pin:.0f} prompt "
            f"tokens at {inf['prefill_tokens_per_s']:,.0f} tok/s prefill + {pout:.0f} at "
            f"{inf['decode_tokens_per_s']:,.0f} tok/s decode, batch {a.decode_batch})"
        )
    else:
        n_gpus = max(1, math.ceil(q / inf["queries_per_gpu_month"])) if q else 1
        fixed = gpu.usd_per_hour * HOURS_PER_MONTH
        monthly = n_gpus * fixed
        per_query = None
        serving = f"instance always on ({n_gpus} GPU{'s' if n_gpus > 1 else ''})"
        inf_basis = (
            f"estimated: {n_gpus} x ${gpu.usd_per_hour:g}/h x {HOURS_PER_MONTH:g} h/month; one GPU serves up to "
            f"{inf['queries_per_gpu_month']:,.0f} queries/month at {inf['gpu_seconds_per_query'] * 1000:.1f} GPU-ms each "
            f"(prefill {inf['prefill_tokens_per_s']:,.0f} tok/s, decode {inf['decode_tokens_per_s']:,.0f} tok/s)"
        )
    per_1k = monthly / q * 1000 if q else per_q * 1000
    caveats = list(est.caveats)
    if not inf["fits"]:
        caveats.append("the model's bf16 weights do not fit this GPU's memory for serving")
    return CompareRow(
        backend=ref,
        label=f"{gpu.ref} ({est.adapter})",
        kind="self-hosted",
        model=om.name,
        **_estimate_fields(est, budget),
        training_exact=False,
        min_charge_applied=False,
        duration_hours=sh.get("duration_hours"),
        inference_per_1k_usd=per_1k,
        inference_monthly_usd=monthly,
        inference_basis=inf_basis,
        inference_exact=False,
        serving=serving,
        break_even_queries_per_month=None,
        break_even_basis=None,
        price=est.price,
        caveats=caveats,
        gpu_hours=sh.get("billed_gpu_hours"),
        training_flops=sh.get("flops"),
        utilisation=sh.get("utilisation"),
        usd_per_gpu_hour=gpu.usd_per_hour,
        _per_query_usd=per_query if gpu.serverless else per_q,
        _fixed_monthly_usd=fixed,
        _queries_per_gpu_month=None if gpu.serverless else inf["queries_per_gpu_month"],
        _monthly_fn=(lambda v: serverless_gpu_hours(v, inf["gpu_seconds_per_query"], a) * gpu.usd_per_hour)
        if gpu.serverless else None,
    )


def serverless_gpu_hours(queries_per_month: float, busy_s_per_query: float, a: Assumptions = ASSUMPTIONS) -> float:
    """GPU-hours a month billed by a per-second GPU that scales to zero.

    Queries arrive at random (Poisson) at rate r per second. A container is up while
    a request arrived within the last W seconds (W, the scale-down window): a fraction
    1 - exp(-r W) of the month. A request that finds no container starts one (a
    fraction exp(-r W) of requests), billing the cold start; one container is up at
    most the whole month. At least the busy time is billed, which takes over once one
    container is not enough.
    """
    if queries_per_month <= 0:
        return 0.0
    month_s = HOURS_PER_MONTH * 3600.0
    rate = queries_per_month / month_s
    w = a.serverless_scaledown_s
    up_fraction = -math.expm1(-rate * w)
    cold_starts = queries_per_month * math.exp(-rate * w)
    busy_h = queries_per_month * busy_s_per_query / 3600.0
    idle_model_h = min(HOURS_PER_MONTH, HOURS_PER_MONTH * up_fraction + cold_starts * a.serverless_cold_start_s / 3600.0)
    return max(busy_h, idle_model_h)


def break_even_volume(
    hosted_per_query: float, self_per_query: float, self_fixed_monthly: float, queries_per_gpu_month: float | None
) -> float | str:
    """Monthly queries above which self-hosting costs less than a per-token hosted option.

    Serverless self-hosting (no fixed cost): 0 if its cost per query is lower, else
    "never". An always-on instance costing F a month that serves up to C queries:
    F / hosted_per_query, if that falls within one GPU's capacity (i.e. the hosted
    price per query is above F / C); else "never" (more GPUs only add cost at the
    same rate per query).
    """
    if queries_per_gpu_month is None:  # serverless, billed for busy time only: linear vs linear
        return 0.0 if self_per_query < hosted_per_query else "never"
    if hosted_per_query <= 0:
        return "never"
    q = self_fixed_monthly / hosted_per_query
    return q if q <= queries_per_gpu_month else "never"


def break_even_monthly(hosted_per_query: float, monthly_cost, max_queries: float = 1e13) -> float | str:
    """Smallest monthly volume at which ``monthly_cost(q)`` drops below ``q x hosted_per_query``.

    For costs whose price per query does not rise with volume (scale-to-zero GPUs:
    idle windows first, then busy time), the two cross at most once: bisection on a
    log scale. "never" when self-hosting is dearer even at ``max_queries``.
    """
    if hosted_per_query <= 0:
        return "never"

    def cheaper(v: float) -> bool:
        return monthly_cost(v) < v * hosted_per_query

    if not cheaper(max_queries):
        return "never"
    lo, hi = 1.0, max_queries
    if cheaper(lo):
        return 0.0
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if cheaper(mid) else (mid, hi)
    return hi


def _break_even(rows: list[CompareRow], q: int) -> None:
    hosted = [r for r in rows if r.kind == "hosted" and r._per_query_usd is not None]
    if not hosted:
        for r in rows:
            if r.kind == "self-hosted":
                r.break_even_basis = "no per-token hosted option in the comparison"
        return
    best = min(hosted, key=lambda r: (r._per_query_usd or 0.0))
    for r in rows:
        if r.kind != "self-hosted":
            continue
        if r._monthly_fn is not None:
            be = break_even_monthly(best._per_query_usd or 0.0, r._monthly_fn)
        else:
            be = break_even_volume(best._per_query_usd or 0.0, r._per_query_usd or 0.0, r._fixed_monthly_usd or 0.0,
                                   r._queries_per_gpu_month)
        r.break_even_queries_per_month = be
        r.break_even_basis = f"vs {best.label} (${(best._per_query_usd or 0) * 1000:.4f} per 1K queries)"


def _short(ref: str) -> str:
    provider, _, name = ref.partition(":")
    return f"{provider}:{name.rsplit('/', 1)[-1]}"
