"""The recommendation, and how it changes with volume.

The rule (:data:`RULE`): the highest score wins; options within ``tolerance`` of the best
score count as tied, and a tie goes to the option with the lowest monthly inference cost
at the volume (options without a cost figure last, then the higher score). Training cost
is one-off: shown beside each option, not part of the ranking.

* **Score**: its 95% Wilson interval when it is a share of examples (:func:`wilson_interval`).
* **Break-even** between the best cloud and the best self-hosted option (each picked by
  the rule among its kind): :func:`ftclient.cost.break_even_volume` /
  :func:`ftclient.cost.break_even_monthly` when the cloud option is priced per token and the
  self-hosted one has one way of serving; otherwise the volumes where the two monthly cost
  curves cross, found numerically.
* **Winner by volume**: the rule's winner from 100 to 1e10 queries/month.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from ..budget import format_usd
from ..cost import break_even_monthly, break_even_volume
from .format import ci_text, pct_text, per_1k_text, round_or_none
from .options import Option, plan_dict
from .plans import WAYS

DEFAULT_TOLERANCE = 0.02

RULE = (
    "highest {metric} wins; options within {tol:g} of the best score ({points:g} points) count as tied, "
    "and a tie goes to the lowest monthly inference cost at {q:,} queries/month (options without a cost "
    "figure last); training is a one-off cost, shown but not ranked"
)

# Volumes scanned for crossings of monthly cost curves (queries per month).
_SCAN_LO, _SCAN_HI, _SCAN_STEPS_PER_DECADE = 1.0, 1e12, 24

#: Metrics whose score is the share of examples answered right (a binomial proportion).
PROPORTION_METRICS = ("exact", "contains", "json", "label")


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for the default z)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return (lo, hi)


def _rank_key(o: Option, q: float):
    c = o.monthly_cost(q)
    return (c is None, c if c is not None else 0.0, -(o.score or 0.0), o.name)


def pick(options: Sequence[Option], q: float, tolerance: float) -> tuple[Option | None, list[Option]]:
    """The rule: (winner, options meeting the bar) among eligible options at volume ``q``."""
    elig = [o for o in options if o.eligible and o.score is not None]
    if not elig:
        return None, []
    best = max(o.score for o in elig)  # type: ignore[type-var]
    bar = [o for o in elig if o.score >= best - tolerance - 1e-12]  # type: ignore[operator]
    return min(bar, key=lambda o: _rank_key(o, q)), bar


def _points(d: float) -> str:
    return f"{d * 100:.1f} points"


def recommend(options: list[Option], q: int, tol: float, metric: str,
              not_compared: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The rule's winner at volume ``q``, the runners-up and the caveats that change the answer."""
    winner, bar = pick(options, q, tol)
    if winner is None:
        return {"recommended": None, "text": "no option can be recommended: none has a score and is still served"}
    if all((o.score or 0.0) <= 0.0 for o in bar):  # the best score is 0: every option scored 0
        names = ", ".join(o.name for o in options if o.eligible and o.score is not None)
        return {"recommended": None, "no_correct_answer": True, "text": (
            f"No option answered any example right: every score is {0.0:.3f} ({metric}; {names}). Nothing is "
            "recommended on score: check the model references, the prompt format and the metric. The costs "
            "below compare price only.")}
    elig = [o for o in options if o.eligible and o.score is not None]
    most = max(elig, key=lambda o: (o.score, -(_rank_key(o, q)[1]), o.name))
    priced = [o for o in elig if o.has_cost]
    cheapest = min(priced, key=lambda o: _rank_key(o, q)) if priced else None
    others = sorted((o for o in bar if o is not winner and o is not most), key=lambda o: _rank_key(o, q))
    alt = others[0] if others else None
    best = most.score or 0.0
    ci = ci_text(winner)
    lines = [
        f"At {q:,} queries/month, **{winner.name}** wins: score {winner.score:.3f} ({metric}; "
        f"{'the best' if winner.score == best else _points(best - (winner.score or 0)) + ' below the best'}), "
        f"{format_usd(winner.monthly_usd)}/month inference ({per_1k_text(winner.cost_per_1k_usd)} per 1K queries"
        + (f", served on {winner.plan_at(q)['serving']}" if winner._plans else "") + ")."  # type: ignore[index]
    ]
    if ci:
        lines.append(f"Its score rests on {ci}.")
    plans = winner.plans_at(q)
    seen_ways = {plans[0]["way"]} if plans else set()
    others_ways = []
    for p in plans[1:]:  # the cheapest of each other way
        if p["way"] not in seen_ways:
            seen_ways.add(p["way"])
            others_ways.append(p)
    if others_ways:
        lines.append("Other ways to serve it at this volume: " + "; ".join(
            f"{WAYS[p['way']]} ({p['offer']}) {format_usd(p['monthly_usd'])}/month, "
            f"{pct_text(p['utilisation'])} of the billed {'GPU' if p['way'].startswith('gpu') else 'CPU'} time busy"
            for p in others_ways) + ".")
    if winner.not_compared:
        lines.append("Not priced for it: " + "; ".join(
            f"{WAYS.get(x['way'], x['way'])}{' ' + x['offer'] if x.get('offer') else ''}: {x['why']}"
            for x in winner.not_compared) + ".")
    if most is not winner:
        lines.append(f"The most accurate, {most.name} ({most.score:.3f}), is within the tolerance and costs "
                     f"{format_usd(most.monthly_usd)}/month.")
    if cheapest is not None and cheapest is not winner:
        lines.append(f"The cheapest overall, {cheapest.name}, costs {format_usd(cheapest.monthly_usd)}/month "
                     f"but scores {_points(best - (cheapest.score or 0))} below the best.")
    if alt is not None:
        lines.append(f"Next choice meeting the bar: {alt.name} ({alt.score:.3f}, {format_usd(alt.monthly_usd)}/month).")
    priced_nc = [x for x in not_compared if x.get("monthly_usd") is not None]
    if not_compared:
        shown = priced_nc[:4] or list(not_compared)[:4]
        more = len(not_compared) - len(shown)
        lines.append("Not compared (not evaluated, so their scores are unknown): " + "; ".join(
            f"{x['name']}" + (f" {per_1k_text(x['cost_per_1k_queries_usd'])} per 1K queries = "
                              f"{format_usd(x['monthly_usd'])}/month" if x.get("monthly_usd") is not None else "")
            for x in shown) + (f"; and {more} more" if more > 0 else "") + ".")
    changing = [dict(c, option=winner.name, text=f"{winner.name}: {c['text']}")
                for c in winner.caveats if c["kind"] in _ANSWER_CHANGING]
    w_month = winner.monthly_usd
    for o in bar:
        # An option that the per-token price the eval measured would have made the winner,
        # but that needs a dedicated endpoint.
        if o is winner or "dedicated_endpoint" not in o.caveat_kinds() or o.eval_cost_per_1k_usd is None:
            continue
        per_token_month = o.eval_cost_per_1k_usd / 1000 * q
        if w_month is None or per_token_month < w_month:
            changing.append({"kind": "dedicated_endpoint", "option": o.name, "text": (
                f"{o.name} would win at the per-token price the eval measured ({format_usd(per_token_month)}/month), "
                "but its host serves fine-tuned LoRA models only on a dedicated endpoint: "
                f"{format_usd(o.monthly_usd)}/month")})
    cheaper_nc = [x for x in priced_nc if w_month is not None and x["monthly_usd"] < w_month]
    if cheaper_nc:
        changing.append({"kind": "not_evaluated", "option": None, "text": (
            f"{len(cheaper_nc)} hosted option(s) that were not evaluated cost less than {winner.name} at this "
            "volume: " + ", ".join(f"{x['name']} {format_usd(x['monthly_usd'])}/month" for x in cheaper_nc)
            + f"; one of them would win if a model fine-tuned there scored within {tol * 100:g} points of the best: "
            "evaluate it to know")})
    for o in options:
        if not o.eligible and "retired" in o.caveat_kinds() and o.score is not None and o.score >= best - tol:
            changing.append({"kind": "retired", "option": o.name, "text": (
                f"{o.name} ({o.score:.3f}) would meet the bar but is left out: "
                + "; ".join(c["text"] for c in o.caveats if c["kind"] == "retired"))})
    return {
        "recommended": winner.name,
        "run_id": winner.run_id,
        "score": winner.score,
        "monthly_inference_usd": round_or_none(winner.monthly_usd, 4),
        "cost_per_1k_queries_usd": round_or_none(winner.cost_per_1k_usd, 6),
        "score_ci95": None if winner.score_ci95 is None else [round(x, 6) for x in winner.score_ci95],
        "serving": winner.serving,
        "serving_plans": [plan_dict(p) for p in plans],
        "bar": {"best_score": best, "min_score": best - tol, "meeting": [o.name for o in bar]},
        "cheapest_meeting_bar": winner.name,
        "most_accurate": most.name,
        "cheapest_overall": cheapest.name if cheapest else None,
        "next_choice": alt.name if alt else None,
        "caveats": changing,
        "excluded": [{"name": o.name, "why": "; ".join(c["text"] for c in o.caveats if c["kind"] in ("retired", "no_score"))}
                     for o in options if not o.eligible],
        "text": " ".join(lines),
    }


_ANSWER_CHANGING = ("dedicated_endpoint", "retirement", "retired", "failed_examples", "no_cost", "job_not_succeeded",
                    "sample_size", "machine_load",
                    "measured_throughput", "gpu_too_small")


# ---------------------------------------------------------------------------- break-even
def _scan(f: Callable[[float], float], lo: float = _SCAN_LO, hi: float = _SCAN_HI) -> list[float]:
    """Volumes where ``f`` (a difference of two monthly costs) changes sign: a log grid,
    each change refined by bisection to half a query. Each result is the volume where the sign changes."""
    n = int(round(math.log10(hi / lo) * _SCAN_STEPS_PER_DECADE))
    xs = [lo * (hi / lo) ** (i / n) for i in range(n + 1)]
    out = []
    prev = f(xs[0]) < 0
    for a, b in zip(xs, xs[1:]):
        cur = f(b) < 0
        if cur != prev:
            x0, x1 = a, b
            while x1 - x0 > 0.25 and x1 / x0 > 1 + 1e-12:
                mid = math.sqrt(x0 * x1)
                if (f(mid) < 0) == prev:
                    x0 = mid
                else:
                    x1 = mid
            out.append((x0 + x1) / 2)
        prev = cur
    return out


def break_even(options: list[Option], q: int, tol: float,
               not_compared: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The volume where the best self-hosted option starts (or stops) costing less than the best cloud one."""
    cloud, _ = pick([o for o in options if o.kind == "hosted" and o.has_cost], q, tol)
    own, _ = pick([o for o in options if o.kind == "self-hosted" and o.has_cost], q, tol)
    res: dict[str, Any] = {"cloud": cloud.name if cloud else None, "self_hosted": own.name if own else None,
                           "queries_per_month": None, "direction": None, "method": None}
    if cloud is None or own is None:
        missing = "cloud (hosted)" if cloud is None else "self-hosted (local)"
        res["text"] = f"no break-even: the comparison has no priced {missing} option that can be recommended"
        per_token = [x for x in not_compared if "per token" in str(x.get("serving"))
                     and x.get("cost_per_1k_queries_usd") is not None]
        if cloud is None and own is not None and per_token:
            ref = min(per_token, key=lambda x: x["cost_per_1k_queries_usd"])
            res["reference"] = _reference_break_even(own, ref)
            res["text"] += "; " + res["reference"]["text"]
        return res
    res["scores"] = {cloud.name: cloud.score, own.name: own.score}
    assert cloud._monthly_fn is not None and own._monthly_fn is not None
    fc, fs = cloud._monthly_fn, own._monthly_fn
    per_token = cloud._per_query is not None and cloud._fixed_monthly == 0.0
    own_way = "its cheapest serving way at each volume" if len(own._plans) > 1 else (own.plan_at(q) or {}).get(
        "offer") or "its serving"
    if per_token and len(own._plans) == 1 and own._per_query is not None:
        h = cloud._per_query or 0.0
        if own._capacity is not None:
            be = break_even_volume(h, own._per_query or 0.0, own._fixed_monthly or 0.0, own._capacity)
            res["method"] = "ftclient.cost.break_even_volume (always-on instance vs per-token)"
        else:
            be = break_even_monthly(h, fs)
            res["method"] = "ftclient.cost.break_even_monthly (per-second GPU vs per-token)"
        if be == "never":
            res["direction"] = "never"
            res["text"] = (f"self-hosting ({own.name}) never costs less than {cloud.name} "
                           f"({per_1k_text(h * 1000)} per 1K queries) at any volume one instance can serve")
        elif be == 0:
            res["queries_per_month"] = 0
            res["direction"] = "self-hosted cheaper at any volume"
            res["text"] = f"self-hosting ({own.name}) costs less than {cloud.name} at any volume"
        else:
            res["queries_per_month"] = round(float(be))
            res["direction"] = "self-hosted cheaper above"
            res["text"] = (f"above ~{float(be):,.0f} queries/month, self-hosting ({own.name}, {own_way}) costs less "
                           f"than {cloud.name} ({per_1k_text(h * 1000)} per 1K queries); below it, {cloud.name} is "
                           f"cheaper")
    else:
        xs = _scan(lambda v: fs(v) - fc(v))
        res["method"] = ("crossings of the two monthly cost curves (the self-hosted one: its cheapest serving way at "
                         "each volume), scanned from 1 to 1e12 queries/month")
        res["crossings"] = [round(x) for x in xs]
        how = f"{cloud.name}: {cloud.serving}" + ("" if per_token else f", {format_usd(fc(q))}/month at {q:,}")
        if not xs:
            cheaper_own = fs(1.0) < fc(1.0)
            res["direction"] = "self-hosted cheaper at any volume" if cheaper_own else "never"
            res["queries_per_month"] = 0 if cheaper_own else None
            res["text"] = (f"{'self-hosting (' + own.name + ')' if cheaper_own else cloud.name} costs less at every "
                           f"volume from 1 to 1e12 queries/month ({how})")
        else:
            below = fs(1.0) < fc(1.0)
            res["queries_per_month"] = round(xs[0])
            res["direction"] = "self-hosted cheaper below" if below else "self-hosted cheaper above"
            spans = []
            edges = [0.0] + xs + [None]
            own_cheaper = below
            for a, b in zip(edges, edges[1:]):
                if own_cheaper:
                    spans.append(f"below ~{b:,.0f}" if a == 0 else (f"from ~{a:,.0f} to ~{b:,.0f}" if b
                                                                     else f"above ~{a:,.0f}"))
                own_cheaper = not own_cheaper
            res["text"] = (f"self-hosting ({own.name}, {own_way}) costs less than {cloud.name} "
                           + " and ".join(spans) + f" queries/month, {cloud.name} elsewhere ({how}); at {q:,}, "
                           + (own.name if fs(q) < fc(q) else cloud.name) + " is cheaper")
    v = res["queries_per_month"]
    if isinstance(v, (int, float)) and v > 0:
        way = own.plan_at(v) or {}
        res["at_break_even"] = {"queries_per_month": v, "cloud_monthly_usd": round(fc(v), 4),
                                "self_hosted_monthly_usd": round(fs(v), 4), "self_hosted_way": way.get("offer")}
        res["text"] += (f" (at ~{v:,} queries/month: {cloud.name} {format_usd(fc(v))}/month, {own.name} "
                        f"{format_usd(fs(v))}/month on {way.get('offer')})")
    if (own.score or 0) < (cloud.score or 0) - tol:
        res["text"] += (f" -- but {own.name} scores {_points((cloud.score or 0) - (own.score or 0))} below "
                        f"{cloud.name}")
    return res


def _reference_break_even(own: Option, ref: Mapping[str, Any]) -> dict[str, Any]:
    """Where a self-hosted option's cheapest serving crosses a per-token price that was not
    evaluated (for scale only: that host's score is unknown)."""
    h = float(ref["cost_per_1k_queries_usd"]) / 1000
    assert own._monthly_fn is not None
    fs = own._monthly_fn
    xs = _scan(lambda v: fs(v) - v * h)
    out: dict[str, Any] = {"against": ref["name"], "cost_per_1k_queries_usd": ref["cost_per_1k_queries_usd"],
                           "crossings": [round(x) for x in xs], "queries_per_month": None}
    head = (f"for scale, against the cheapest per-token price not evaluated ({ref['name']}, {per_1k_text(h * 1000)} "
            "per 1K queries)")
    if not xs:
        cheaper = fs(1.0) < h
        out["queries_per_month"] = 0 if cheaper else None
        out["text"] = head + (f": {own.name} costs less at every volume" if cheaper
                              else f": {own.name} costs more at every volume up to 1e12 queries/month")
        return out
    v = round(xs[0])
    way = own.plan_at(v) or {}
    out["queries_per_month"] = v
    out["self_hosted_way"] = way.get("offer")
    out["text"] = (head + f": self-hosting {own.name} ({way.get('offer')}) costs less above ~{v:,} queries/month, "
                   f"where both cost ~{format_usd(fs(v))}/month")
    return out


def winner_by_volume(options: list[Option], tol: float) -> list[dict[str, Any]]:
    """The rule's winner from 100 to 1e10 queries/month: ranges of volume and their winner."""
    lo, hi = 100.0, 1e10
    _, bar = pick(options, lo, tol)  # the bar does not depend on volume
    if all((o.score or 0.0) <= 0.0 for o in bar):
        return []  # every option scored 0: no winner on score at any volume
    priced = [o for o in bar if o.has_cost]
    if not priced:
        return []
    if len(priced) == 1:
        return [{"from": 0, "to": None, "winner": priced[0].name}]

    def winner(v: float) -> Option:
        return min(priced, key=lambda o: _rank_key(o, v))

    n = int(round(math.log10(hi / lo) * _SCAN_STEPS_PER_DECADE))
    xs = [lo * (hi / lo) ** (i / n) for i in range(n + 1)]
    ranges = [{"from": 0, "to": None, "winner": winner(lo).name}]
    for a, b in zip(xs, xs[1:]):
        wb = winner(b)
        if wb.name != ranges[-1]["winner"]:
            x0, x1 = a, b
            wa = ranges[-1]["winner"]
            while x1 - x0 > 0.25 and x1 / x0 > 1 + 1e-12:
                mid = math.sqrt(x0 * x1)
                if winner(mid).name == wa:
                    x0 = mid
                else:
                    x1 = mid
            v = round((x0 + x1) / 2)
            ranges[-1]["to"] = v
            ranges.append({"from": v, "to": None, "winner": wb.name})
    return ranges
