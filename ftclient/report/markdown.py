"""report.md: the recommendation, the options side by side, the self-hosted serving ways, the
options not compared, the break-even, the caveats and how each figure is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..budget import format_usd
from .format import duration_text, ms_text, pct_text, per_1k_text
from .options import Report
from .plans import WAYS


def _md(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def report_markdown(r: Report, image: str | None) -> str:
    """report.md's text; ``image``: the figure's file name to link, or None for none."""
    o0 = r.options[0]
    q = r.queries_per_month
    L: list[str] = ["# ftc comparison report", ""]
    data = ("the same data" if r.comparable else "DIFFERENT data") + (
        f" (`{_md(Path(o0.data).name)}`, sha256 `{o0.data_sha256[:12]}`, {o0.examples:,} examples)" if r.comparable else "")
    L.append(f"{len(r.options)} option{'s' if len(r.options) != 1 else ''} scored by `{r.metric}` on {data}; "
             f"volume **{q:,} queries/month**; prices as of the catalogue; {r.today.isoformat()}.")
    L.append("")
    for w in r.warnings:
        L.append(f"> **WARNING:** {_md(w['text'])}" if w["kind"] in ("different_data", "different_examples")
                 else f"> Note: {_md(w['text'])}")
        L.append("")
    rec = r.recommendation
    L += ["## Recommendation", ""]
    L.append(rec["text"])
    L.append("")
    L.append(f"Rule: {r.rule}.")
    L.append("")
    if rec.get("caveats"):
        L.append("Caveats that change the answer:")
        L.append("")
        L += [f"- {_md(c['text'])}" for c in rec["caveats"]]
        L.append("")
    for x in rec.get("excluded") or []:
        L.append(f"- Left out: {_md(x['name'])}: {_md(x['why'])}")
    if rec.get("excluded"):
        L.append("")
    if len(r.winner_by_volume) > 1:
        parts = []
        for w in r.winner_by_volume:
            span = (f"up to ~{w['to']:,}" if w["from"] == 0 else
                    f"~{w['from']:,} to ~{w['to']:,}" if w["to"] else f"from ~{w['from']:,}")
            parts.append(f"{span}: {w['winner']}")
        L.append("The winner changes with volume (queries/month): " + "; ".join(parts) + ".")
        L.append("")
    L.append(f"Break-even, cloud vs self-hosting: {r.break_even['text']}.")
    L.append("")
    L += ["## Options", ""]
    L.append("| option | score (" + _md(r.metric) + ") | 95% CI | per 1K queries | per month | latency p50 | p95 | "
             "training | training time | serving |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for o in r.options:
        mark = " (winner)" if o.name == rec.get("recommended") else ("" if o.eligible else " (left out)")
        ci = "-" if o.score_ci95 is None else f"{o.score_ci95[0] * 100:.1f}-{o.score_ci95[1] * 100:.1f}%"
        L.append("| " + " | ".join([
            _md(o.name) + mark,
            "-" if o.score is None else f"{o.score:.3f}" + (f" (n={o.score_n})" if o.score_n else ""),
            ci,
            per_1k_text(o.cost_per_1k_usd), format_usd(o.monthly_usd),
            ms_text(o.latency_s.get("p50")), ms_text(o.latency_s.get("p95")),
            format_usd(o.training_cost_usd) if o.training_cost_usd is not None else "-",
            duration_text(o.training_time_s),
            _md(o.serving),
        ]) + " |")
    L.append("")
    L.append(f"Per month = per 1K queries x {q:,} / 1,000. The 95% CI is the Wilson interval of the share of "
             "examples answered right (n examples).")
    L.append("")
    if image:
        L += [f"![{_md(r.metric)} against cost per 1K queries, and latency]({image})", ""]
    own = [o for o in r.options if o._plans or o.not_compared]
    if own:
        L += ["## Serving the self-hosted models", ""]
        L.append(f"Each self-hosted option costs its cheapest way of serving at {q:,} queries/month; every way "
                 "priced is listed (busy = the share of the billed time that answering takes).")
        L.append("")
        for o in own:
            L.append(f"**{_md(o.name)}**")
            L.append("")
            if o._plans:
                L.append("| way | offer | per month | per 1K queries | units | busy | how |")
                L.append("|---|---|---:|---:|---:|---:|---|")
                for i, p in enumerate(o.plans_at(q)):
                    L.append("| " + " | ".join([
                        WAYS[p["way"]] + (" (chosen)" if i == 0 else ""), _md(p["offer"]), format_usd(p["monthly_usd"]),
                        per_1k_text(p["cost_per_1k_queries_usd"]), str(p["units"]), pct_text(p["utilisation"]),
                        _md(p["basis"])]) + " |")
                L.append("")
            for x in o.not_compared:
                L.append(f"- Not priced: {WAYS.get(x['way'], x['way'])}"
                         + (f" {_md(x['offer'])}" if x.get("offer") else "") + f": {_md(x['why'])}")
            if o.not_compared:
                L.append("")
    if r.not_compared:
        L += ["## Not compared", ""]
        L.append("Hosted options that were not evaluated on this data: their cost is known, their score is not, so "
                 "the rule cannot rank them. Evaluate one (`ftc eval PROVIDER:MODEL --data EVAL.jsonl`) to compare it.")
        L.append("")
        L.append("| option | serving | per 1K queries | per month | why | how |")
        L.append("|---|---|---:|---:|---|---|")
        for x in r.not_compared:
            L.append("| " + " | ".join([_md(x["name"]), _md(x["serving"]), per_1k_text(x["cost_per_1k_queries_usd"]),
                                         format_usd(x["monthly_usd"]), _md(x["why"]), _md(x["basis"])]) + " |")
        L.append("")
    L += ["## Break-even between cloud and self-hosting", ""]
    be = r.break_even
    L.append(f"{be['text']}.")
    if be.get("method"):
        L.append("")
        sh = r.self_host
        ways = [f"{sh['gpu']} at ${sh['usd_per_hour']:g}/h ({sh['billing']})"]
        if sh.get("per_second_gpus"):
            ways.append("per-second GPUs " + ", ".join(sh["per_second_gpus"]))
        if sh.get("cpu_instances"):
            ways.append("CPU instances " + ", ".join(sh["cpu_instances"]) + " (when the eval ran on a CPU)")
        L.append(f"Method: {be['method']}. Self-hosting priced on: {'; '.join(ways)}.")
    L.append("")
    L += ["## Caveats", ""]
    any_c = False
    for o in r.options:
        if o.caveats:
            any_c = True
            L.append(f"**{_md(o.name)}**")
            L.append("")
            L += [f"- {_md(c['text'])}" for c in o.caveats]
            L.append("")
    if r.not_compared:
        any_c = True
        L.append(f"**Not compared**: {len(r.not_compared)} hosted option(s) were not evaluated (see above); a cheaper "
                 "one may meet the bar.")
        L.append("")
    if not any_c:
        L += ["None.", ""]
    L += ["## How each figure is made", ""]
    for o in r.options:
        L.append(f"- **{_md(o.name)}** (run `{o.run_id}`, model `{_md(o.model)}`): cost: {_md(o.cost_basis or 'none')}"
                 + (f"; training: {_md(o.training_cost_basis)}" if o.training_cost_basis else "")
                 + (f"; time: {_md(o.training_time_basis)}" if o.training_time_basis else "")
                 + (f"; {o.failed} failed" if o.failed else "") + ".")
    L.append("")
    L.append("Latency is what the eval measured from the evaluating machine (network included for hosted "
             "options; a local run's latency is that machine's, not the GPU priced for self-hosting).")
    L.append("")
    return "\n".join(L)
