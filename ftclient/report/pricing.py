"""Pricing an option at a volume, and the hosted options that were not evaluated.

* **Hosted, per token**: the eval's cost per 1K queries (measured tokens x catalogue
  prices); when the eval has none, the report prices the eval's tokens per query with
  the catalogue. Monthly = volume x cost per query.
* **Hosted, dedicated endpoint**: a fine-tuned model at a host whose catalogue entry says
  ``serving: dedicated`` (Together serves fine-tuned LoRA models only on a dedicated
  endpoint) costs the endpoint's hours, always on: ``dedicated_endpoint_per_hour x 730``
  a month, whatever the volume (capacity assumed sufficient, as in ``ftc cost compare``).
* **Self-hosted**: every way to serve it that can be priced (:mod:`ftclient.report.plans`).
* **Not compared**: hosted options that were not evaluated (their score is unknown), with
  their cost: the cost comparison's hosted rows (``costs``) or the catalogue's per-token hosts.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from ..prices import HOURS_PER_MONTH
from .format import finite_float, round_or_none
from .options import Option, is_hosted
from .plans import price_self_hosted


def catalogue_entry(o: Option, cat) -> Any:
    """The catalogue entry of the hosted model a run used (its base model first), or None."""
    cands = []
    if is_hosted(o.backend):
        for x in (o.base_model, o.model):
            if x:
                cands.append(x if x.startswith(o.backend + ":") else f"{o.backend}:{x}")
    if ":" in o.model_ref:
        cands.append(o.model_ref)
    for c in cands:
        if cat.has_model(c):
            return cat.model(c)
    return None


def price_option(o: Option, cat, gpu, q: int) -> None:
    """Give ``o`` its cost model and its cost at volume ``q`` (or the ``no_cost`` caveat)."""
    o._q = q
    if o.kind == "self-hosted":
        price_self_hosted(o, cat, gpu, q)
    else:
        _price_hosted(o, cat, q)
    if o.has_cost:
        o.monthly_usd = o.monthly_cost(q)
        o.cost_per_1k_usd = o.monthly_usd / q * 1000 if o.monthly_usd is not None else None
    else:
        o.caveat("no_cost", "no cost figure: the eval gave none and the catalogue does not price this model; "
                            "it ranks after every priced option")


def _price_hosted(o: Option, cat, q: int) -> None:
    entry = catalogue_entry(o, cat)
    o.catalogue_model = entry.ref if entry is not None else None
    if entry is not None and o.fine_tuned and entry.serving == "dedicated":
        per_hour = entry.dedicated_endpoint_per_hour
        per_token = ""
        if o.eval_cost_per_1k_usd is not None:
            per_token = f" instead of the per-token ${o.eval_cost_per_1k_usd:.4f} per 1K queries the eval measured"
        if per_hour is None:
            o.serving = "dedicated endpoint (price unknown)"
            o.caveat("dedicated_endpoint", f"{entry.provider} has no serverless inference for fine-tuned LoRA models: "
                                           "it needs a dedicated endpoint, whose price the catalogue lacks; no cost figure")
            return
        fixed = per_hour * HOURS_PER_MONTH
        o.serving = "dedicated endpoint, always on"
        o._fixed_monthly = fixed
        o._monthly_fn = lambda v, _f=fixed: _f
        o.cost_basis = (f"dedicated endpoint ${per_hour:g}/h x {HOURS_PER_MONTH:g} h/month = ${fixed:,.2f}/month "
                        "at any volume (capacity assumed sufficient)")
        o.caveat("dedicated_endpoint", (
            f"{entry.provider} has no serverless inference for fine-tuned LoRA models: serving this one needs a "
            f"dedicated endpoint (${per_hour:g}/h, ${fixed:,.0f}/month always on), i.e. "
            f"${fixed / q * 1000:,.4f} per 1K queries at {q:,} queries/month{per_token}"))
        return
    per_1k = o.eval_cost_per_1k_usd
    basis = f"per token, from the eval: {o.eval_cost_basis}" if o.eval_cost_basis else "per token, from the eval"
    if per_1k is None and entry is not None:
        tin, tout = finite_float(o.tokens.get("input_per_query")), finite_float(o.tokens.get("output_per_query"))
        pi, po = entry.inference_input_per_1m, entry.inference_output_per_1m
        if tin is not None and tout is not None and pi is not None and po is not None:
            per_1k = (tin * pi + tout * po) / 1e6 * 1000
            basis = (f"per token, priced by the report: {tin:.1f} input x ${pi:g}/1M + {tout:.1f} output tokens x "
                     f"${po:g}/1M per query ({entry.ref}, catalogue as of {entry.as_of})")
    if per_1k is None:
        return
    per_q = per_1k / 1000
    o.serving = "serverless, per token"
    o._per_query = per_q
    o._fixed_monthly = 0.0
    o._monthly_fn = lambda v, _p=per_q: v * _p
    o.cost_basis = basis


def _short_ref(ref: str) -> str:
    """``fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct`` -> ``fireworks:llama-v3p1-8b-instruct``."""
    provider, _, name = ref.partition(":")
    return f"{provider}:{name.rstrip('/').rsplit('/', 1)[-1]}"


def not_compared_hosted(options: list[Option], cat, q: int, costs: Any, today: _dt.date) -> list[dict[str, Any]]:
    """Hosted options that were not evaluated, so their score is unknown: the cost stage's hosted
    rows (``costs``), else the catalogue's per-token hosts priced at the eval's tokens per query."""
    evaluated = {o.catalogue_model for o in options if o.catalogue_model} | {o.model_ref for o in options}
    why = "not evaluated: its score on this data is unknown"
    out: list[dict[str, Any]] = []
    if costs is not None:
        d = costs.to_dict() if hasattr(costs, "to_dict") else dict(costs)
        for r in d.get("rows") or []:
            if r.get("kind") != "hosted" or r.get("model") in evaluated:
                continue
            if r.get("serving") == "shut down" or "(retired)" in str(r.get("label") or ""):
                continue  # it can no longer be fine-tuned or served
            per_1k, serving = finite_float(r.get("inference_per_1k_usd")), str(r.get("serving") or "")
            monthly = None
            if per_1k is not None and "per token" in serving:
                monthly = per_1k * q / 1000
            elif finite_float(r.get("inference_monthly_usd")) is not None:  # a flat monthly cost (dedicated endpoint)
                monthly = float(r["inference_monthly_usd"])
                per_1k = monthly / q * 1000
            out.append({"name": r.get("label") or r.get("model"), "model": r.get("model"), "serving": serving,
                        "cost_per_1k_queries_usd": round_or_none(per_1k, 6), "monthly_usd": round_or_none(monthly, 4),
                        "why": why, "basis": "the cost stage (ftc cost compare): " + str(r.get("inference_basis"))})
    else:
        toks = next(((finite_float(o.tokens.get("input_per_query")), finite_float(o.tokens.get("output_per_query")),
                      o.name)
                     for o in options if finite_float(o.tokens.get("input_per_query"))), None)
        for ref in cat.model_refs():
            e = cat.model(ref)
            if e.ref in evaluated or e.serving != "serverless":
                continue
            if (e.inference_shutdown and today >= e.inference_shutdown) or (e.train_cutoff and today >= e.train_cutoff):
                continue  # it can no longer be fine-tuned or served
            pi, po = e.inference_input_per_1m, e.inference_output_per_1m
            per_1k = monthly = None
            basis = "no token count from the evals to price it with"
            if toks is not None and toks[1] is not None and pi is not None and po is not None:
                per_1k = (toks[0] * pi + toks[1] * po) / 1e6 * 1000
                monthly = per_1k * q / 1000
                basis = (f"estimated: {toks[0]:.1f} input x ${pi:g}/1M + {toks[1]:.1f} output tokens x ${po:g}/1M per "
                         f"query (the tokens {toks[2]}'s eval counted with its own tokenizer; catalogue as of "
                         f"{e.as_of})")
            out.append({"name": _short_ref(e.ref), "model": e.ref, "serving": "serverless, per token",
                        "cost_per_1k_queries_usd": round_or_none(per_1k, 6), "monthly_usd": round_or_none(monthly, 4),
                        "why": why, "basis": basis})
    out.sort(key=lambda x: (x["monthly_usd"] is None, x["monthly_usd"] or 0.0, str(x["name"])))
    return out
