"""One training estimate: :func:`estimate_cost` of a hosted model or a self-hosted GPU offer."""

from __future__ import annotations

import os
from typing import Iterable

from ..prices import Catalogue
from .assumptions import ASSUMPTIONS, catalogue_for, check_args, epochs_for
from .counts import Counts
from .hosted import hosted_training
from .parquet import check_parquet
from .records import CostEstimate
from .selfhost import (
    DEFAULT_SELF_HOST_MODEL,
    SelfHostModel,
    is_self_host,
    resolve_self_host_model,
    self_host_training,
)


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
    _counts: Counts | None = None,
) -> CostEstimate:
    """Training cost of fine-tuning ``model_ref`` on the data (a JSONL path or records, or
    for Together a pre-tokenized Parquet file: its exact token counts)."""
    method, adapter = check_args(epochs, method, adapter)
    cat = catalogue_for(prices, today)
    if _counts is None:
        check_parquet(path_or_records, [model_ref], cat, method)
    counts = _counts or Counts.of(path_or_records)
    n = counts.n
    ep, ep_basis = epochs_for(epochs, n)
    if is_self_host(model_ref, cat):
        om = resolve_self_host_model(self_host_model, cat)
        gpu = cat.gpu(model_ref)
        counter = om.counter()
        totals = counts.split(counter)[0]
        per_epoch = sum(totals)
        billed = per_epoch * ep
        sh = self_host_training(om.params_b, billed, gpu, adapter, ASSUMPTIONS)
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
    per_epoch, over, billed, price, raw, cost, applied, basis = hosted_training(entry, totals, ep, method, adapter)
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
