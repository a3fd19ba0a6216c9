"""Self-hosted serving: every way a self-hosted (``local``) run can be served that can be priced,
and the option costs the cheapest at each volume (:data:`WAYS`): the always-on GPU offer
``self_host_gpu`` (default :data:`DEFAULT_SELF_HOST_GPU`; more GPUs once one is full), each
per-second GPU of the catalogue (busy time and idle windows,
:func:`ftclient.cost.serverless_gpu_hours`) -- GPU-seconds per query from ``ftclient.cost``'s
throughput model (the model's parameter count, the eval's tokens per query) -- and, when the eval
ran on a CPU, each CPU instance of the catalogue (``cpus``) at the throughput the eval measured,
scaled to its vCPUs. Each way states how busy the volume keeps what it bills. A model the
catalogue does not know and whose size cannot be read: 1 / the throughput measured by the eval,
on ``self_host_gpu``."""

from __future__ import annotations

import math
from typing import Any, Callable

from ..backends import default_model_of
from ..cost import ASSUMPTIONS, resolve_self_host_model, self_host_inference, serverless_gpu_hours
from ..errors import ConfigError
from ..prices import HOURS_PER_MONTH
from .format import finite_float, pct_text
from .options import Option, runs_here

#: The always-on GPU offer self-hosted serving is priced on unless ``self_host_gpu`` names another.
DEFAULT_SELF_HOST_GPU = "runpod:rtx4090-community"


#: The ways of serving a self-hosted model that the report compares (``serving_plans[].way``).
WAYS = {
    "gpu_always_on": "GPU instance, always on",
    "gpu_per_second": "GPU billed per second, scales to zero",
    "cpu_always_on": "CPU instance, always on",
}


class Plan:
    """One way to serve a self-hosted model: its monthly cost at a volume, and the figures behind it."""

    def __init__(self, way: str, offer: str, usd_per_hour: float, billing: str,
                 at: Callable[[float], dict[str, Any]]):
        self.way, self.offer, self.usd_per_hour, self.billing, self._at = way, offer, usd_per_hour, billing, at

    def monthly(self, v: float) -> float:
        return float(self._at(v)["monthly_usd"])

    def at(self, v: float) -> dict[str, Any]:
        d = self._at(v)
        return {"way": self.way, "offer": self.offer, "usd_per_hour": self.usd_per_hour, "billing": self.billing,
                **d, "cost_per_1k_queries_usd": d["monthly_usd"] / v * 1000 if v else None}


def _gpu_plan(gpu, gpu_s: float, how: str) -> Plan:
    """An offer of the catalogue's ``gpus``: hourly (always on, one more GPU each time one is full)
    or per second (busy time and idle windows, :func:`ftclient.cost.serverless_gpu_hours`)."""
    price, month_s = gpu.usd_per_hour, HOURS_PER_MONTH * 3600.0
    if gpu.serverless:
        a = ASSUMPTIONS

        def at(v: float) -> dict[str, Any]:
            hours = serverless_gpu_hours(v, gpu_s)
            busy_h = v * gpu_s / 3600.0
            monthly = hours * price
            return {"units": 1, "monthly_usd": monthly, "billed_hours": hours, "busy_s_per_query": gpu_s,
                    "utilisation": busy_h / hours if hours else 0.0, "capacity_queries_per_month": None,
                    "serving": f"{gpu.ref}, GPU billed per second, scales to zero ({hours:,.1f} GPU-h/month billed)",
                    "basis": (f"{hours:,.1f} billed GPU-h x ${price:g}/h = ${monthly:,.2f}/month: busy "
                              f"{busy_h * 3600:,.0f} s ({v:,.0f} queries x {gpu_s * 1000:.3g} GPU-ms, {how}) plus "
                              f"idle windows -- queries arriving at random, a container stays up "
                              f"{a.serverless_scaledown_s:g} s after each request and each cold start bills "
                              f"{a.serverless_cold_start_s:g} s (ftclient.cost.serverless_gpu_hours)")}

        return Plan("gpu_per_second", gpu.ref, price, gpu.billing, at)
    cap = month_s / gpu_s if gpu_s > 0 else float("inf")

    def at_hourly(v: float) -> dict[str, Any]:
        n = max(1, math.ceil(v / cap)) if v > 0 else 1
        monthly = n * price * HOURS_PER_MONTH
        util = v * gpu_s / (n * month_s)
        return {"units": n, "monthly_usd": monthly, "billed_hours": n * HOURS_PER_MONTH, "busy_s_per_query": gpu_s,
                "utilisation": util, "capacity_queries_per_month": cap,
                "serving": f"{gpu.ref} always on ({n} GPU{'s' if n > 1 else ''}, {pct_text(util)} busy)",
                "basis": (f"{n} x ${price:g}/h x {HOURS_PER_MONTH:g} h = ${monthly:,.2f}/month; one GPU serves up to "
                          f"{cap:,.0f} queries/month at {gpu_s * 1000:.3g} GPU-ms each ({how}); {v:,.0f} queries "
                          f"keep {'them' if n > 1 else 'it'} {pct_text(util)} busy")}

    return Plan("gpu_always_on", gpu.ref, price, gpu.billing, at_hourly)


def _cpu_plan(cpu, qps: float, cpus: int, device: str) -> Plan:
    """A CPU instance of the catalogue's ``cpus``, always on, at the throughput the eval measured on
    this machine's CPUs, scaled to the instance's vCPUs (never above the measured figure)."""
    price, month_s = cpu.usd_per_hour, HOURS_PER_MONTH * 3600.0
    scale = min(1.0, cpu.vcpus / cpus) if cpus else 1.0
    cap_qps = qps * scale
    cap = cap_qps * month_s

    def at(v: float) -> dict[str, Any]:
        n = max(1, math.ceil(v / cap)) if v > 0 else 1
        monthly = n * price * HOURS_PER_MONTH
        util = v / (n * cap)
        scaled = (f"scaled to its {cpu.vcpus} vCPUs ({cpu.vcpus}/{cpus}): {cap_qps:.3g} queries/s" if scale < 1
                  else f"kept at that rate on its {cpu.vcpus} vCPUs")
        return {"units": n, "monthly_usd": monthly, "billed_hours": n * HOURS_PER_MONTH,
                "busy_s_per_query": 1.0 / cap_qps, "utilisation": util, "capacity_queries_per_month": cap,
                "serving": (f"CPU: {cpu.ref} always on ({n} instance{'s' if n > 1 else ''}, {cpu.vcpus} vCPUs, "
                            f"{pct_text(util)} busy)"),
                "basis": (f"{n} x ${price:g}/h x {HOURS_PER_MONTH:g} h = ${monthly:,.2f}/month; the eval measured "
                          f"{qps:.3g} queries/s on this machine's {cpus} CPUs, {scaled} = {cap:,.0f} "
                          f"queries/month per instance (throughput assumed proportional to vCPUs, never above the "
                          f"measured); {v:,.0f} queries keep {'them' if n > 1 else 'it'} {pct_text(util)} busy")}

    return Plan("cpu_always_on", cpu.ref, price, cpu.billing, at)


def _open_model(o: Option, cat) -> Any:
    """The catalogue's open model (parameter count) of a local run's base model, or None."""
    base = o.base_model or o.model
    if runs_here(o.backend) and base in (None, "", "default"):
        base = default_model_of(o.backend)
    return cat.open_model_for(base) if base else None


def _model_size(o: Option, cat) -> tuple[float, str, str | None] | None:
    """(billions of parameters, where that came from, catalogue key or None) of a local run's
    base model: the catalogue's open model, else its files on this machine or its name."""
    om = _open_model(o, cat)
    if om is not None:
        return om.params_b, f"{om.key}, {om.params_b:g}B params (price catalogue)", om.key
    base = o.base_model or o.model
    if not base:
        return None
    try:
        m = resolve_self_host_model(str(base), cat)
    except ConfigError:
        return None
    return m.params_b, f"{m.name}, {m.params_b:g}B params ({m.params_basis})", None


def price_self_hosted(o: Option, cat, gpu, q: int) -> None:
    """Every way to serve a self-hosted model the report can price: the always-on GPU offer
    (``self_host_gpu``), each per-second GPU offer of the catalogue, and CPU instances at the
    throughput the eval measured when it ran on a CPU. The option costs its cheapest way at each
    volume; the ways it could not price are listed with the reason."""
    plans: list[Plan] = []
    tin, tout = finite_float(o.tokens.get("input_per_query")), finite_float(o.tokens.get("output_per_query"))
    size = _model_size(o, cat) if runs_here(o.backend) else None
    machine = o.machine or {}
    device = str(machine.get("device") or "")
    cpus = int(machine.get("cpu_count") or 0)
    if size is not None and tin is not None and tout is not None:
        params_b, size_basis, key = size
        o.catalogue_model = key
        gpus = [gpu] + [cat.gpu(r) for r in cat.gpu_refs() if r != gpu.ref and cat.gpu(r).serverless]
        for g in gpus:
            if g.spec is None:
                continue
            inf = self_host_inference(params_b, g, tin, tout, ASSUMPTIONS)
            if not inf["fits"]:
                if g is gpu:
                    o.caveat("gpu_too_small", f"the model's weights do not fit {gpu.ref}'s memory for serving")
                o.not_compared.append({"way": "gpu_per_second" if g.serverless else "gpu_always_on", "offer": g.ref,
                                       "why": f"the model's bf16 weights do not fit its {g.spec.memory_gb:g} GB"})
                continue
            how = (f"throughput model: {size_basis}; {tin:.0f} prompt tokens at {inf['prefill_tokens_per_s']:,.0f} "
                   f"tok/s + {tout:.0f} completion tokens at {inf['decode_tokens_per_s']:,.0f} tok/s")
            plans.append(_gpu_plan(g, inf["gpu_seconds_per_query"], how))
    elif o.throughput_qps:
        gpu_s = 1.0 / o.throughput_qps
        how = f"1 / the {o.throughput_qps:.3g} queries/s the eval measured"
        if runs_here(o.backend):
            o.caveat("measured_throughput", (
                "the model's size is unknown (no catalogue entry, no files on this machine, no size in its name): "
                f"its GPU serving cost uses the throughput the eval measured on the evaluating machine "
                f"({o.throughput_qps:.2f} queries/s), not a {gpu.ref} figure"))
            o.not_compared.append({"way": "gpu_per_second", "offer": None,
                                   "why": "the model's size is unknown, so the GPU throughput model cannot price it"})
        else:
            o.caveat("measured_throughput", (
                f"serving cost from the throughput the eval measured against this server ({o.throughput_qps:.2f} "
                f"queries/s at the eval's concurrency) at {gpu.ref}'s ${gpu.usd_per_hour:g}/h: give --gpu-price "
                "with the server's real price per hour"))
            o.not_compared.append({"way": "gpu_per_second, cpu_always_on", "offer": None,
                                   "why": "the server's hardware is unknown: only its measured throughput on the "
                                          "--self-host-gpu offer is priced"})
        plans.append(_gpu_plan(gpu, gpu_s, how))
    if runs_here(o.backend):
        cpu_refs = cat.cpu_refs() if hasattr(cat, "cpu_refs") else []
        if not machine:
            why = "the eval did not record where it ran (a run by an older ftc): no CPU throughput to price"
        elif not device.startswith("cpu"):
            why = f"the eval ran on {device or 'an unknown device'}, so no CPU throughput was measured"
        elif not o.throughput_qps:
            why = "the eval measured no throughput"
        elif not cpu_refs:
            why = "the price catalogue has no CPU instance (cpus:)"
        else:
            why = ""
            need_gb = (size[0] * 4 * 1.2 + 1.0) if size is not None else 0.0  # fp32 weights + runtime
            for ref in cpu_refs:
                c = cat.cpu(ref)
                if c.memory_gb and c.memory_gb < need_gb:
                    o.not_compared.append({"way": "cpu_always_on", "offer": c.ref,
                                           "why": f"{c.memory_gb:g} GB of memory, the model needs ~{need_gb:.1f} GB"})
                    continue
                plans.append(_cpu_plan(c, float(o.throughput_qps), cpus or c.vcpus, device))
                if c.stale:
                    o.caveat("stale_price", f"the {c.ref} price is older than 90 days (as_of {c.as_of})")
        if why:
            o.not_compared.append({"way": "cpu_always_on", "offer": None, "why": why})
    if not plans:
        o.serving = f"self-hosted on {gpu.ref} (throughput unknown)"
        return
    o._plans = plans
    o._monthly_fn = lambda v, _p=plans: min(p.monthly(v) for p in _p)
    best = o.plan_at(q)
    o.serving = best["serving"]
    o.cost_basis = "estimated: " + best["basis"]
    if len(plans) == 1:  # the cost model's parts, for the break-even formulas
        pl = plans[0].at(q)
        o._per_query = pl["busy_s_per_query"] / 3600.0 * plans[0].usd_per_hour
        if plans[0].way == "gpu_always_on":
            o._fixed_monthly = plans[0].usd_per_hour * HOURS_PER_MONTH
            o._capacity = pl["capacity_queries_per_month"]
        else:
            o._fixed_monthly = 0.0
    if gpu.stale:
        o.caveat("stale_price", f"the {gpu.ref} price is older than 90 days (as_of {gpu.as_of})")
