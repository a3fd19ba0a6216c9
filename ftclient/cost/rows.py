"""The rows of a comparison: a hosted model, a self-hosted GPU offer, this machine.

Inference: hosted per token (prompt x input price + completion x output price); a
dedicated endpoint (e.g. Together LoRA models) costs its hours, always on; self-hosted
by GPU-seconds per query (:func:`~ftclient.cost.selfhost.self_host_inference`), per-second
serverless hosts billed for busy time, hourly instances kept on all month.
"""

from __future__ import annotations

import math
from typing import Any

from ..budget import usable_usd
from ..prices import HOURS_PER_MONTH, GpuEntry, ModelEntry
from .assumptions import Assumptions
from .breakeven import serverless_gpu_hours
from .counts import Counts
from .records import CompareRow, CostEstimate, LocalCostEstimate
from .selfhost import self_host_inference


def _query_tokens(counts: Counts, counter, tin, tout) -> tuple[float, float, bool]:
    if tin is not None and tout is not None:
        return float(tin), float(tout), True
    _, prompt, completion = counts.split(counter)
    n = len(prompt)
    pin = float(tin) if tin is not None else sum(prompt) / n
    pout = float(tout) if tout is not None else sum(completion) / n
    return pin, pout, False


def _budget(cost: float | None, budget: float | None) -> bool | None:
    if budget is None or cost is None:
        return None
    return usable_usd(cost) and cost <= budget + 1e-9  # NaN/inf/negative never passes a budget


def local_row(ref: str, est: "LocalCostEstimate", budget: float | None) -> CompareRow:
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


def hosted_row(ref, est: CostEstimate, entry: ModelEntry, counts, q, tin, tout, budget) -> CompareRow:
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


def self_row(ref, est: CostEstimate, gpu: GpuEntry, om, counts, q, tin, tout, budget, a: Assumptions) -> CompareRow:
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


def _short(ref: str) -> str:
    provider, _, name = ref.partition(":")
    return f"{provider}:{name.rsplit('/', 1)[-1]}"
