"""``ftc migrate report``: is a replacement as good as the fine-tune it replaces, and what does it cost?

Each candidate is evaluated on the captured prompts (``ftc eval``; answers already stored
are reused) and compared with the captured answers of the original model:

* **agreement**: the share (or mean, for ``f1``) of prompts where the candidate's answer
  matches the original's, by the metric that fits the data (:func:`pick_metric`);
* **accuracy**: the same metric against the data's own reference answers;
* latency p50/p95, training cost, $ per 1K queries and per month (priced as ``ftc compare``
  prices them), and the days left before the original shuts down.

The recommendation is the cheapest candidate whose agreement reaches ``min_agreement``,
or an honest "none is good enough yet" with what to try next.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..budget import format_usd
from ..errors import DataError, UsageError
from ..evaluation import evaluate, load_examples
from ..metrics import score as _score
from ..report import DEFAULT_SELF_HOST_GPU, REPORT_PNG, build_report, job_infos, write_report_files
from ..store import Store
from .capture import CaptureRecord, load_capture

__all__ = ["CandidateResult", "MigrationReport", "migration_report", "pick_metric", "agreement",
           "write_migration_report", "DEFAULT_MIN_AGREEMENT"]

DEFAULT_MIN_AGREEMENT = 0.9


def pick_metric(answers: Sequence[str]) -> str:
    """The metric that fits answers like these: ``json`` when every one is a JSON object or
    array; ``label`` when they are short (at most 4 words) and repeat (fewer distinct values
    than half their number); ``exact`` for other short answers; ``f1`` for longer text."""
    texts = [str(a).strip() for a in answers if a is not None and str(a).strip()]
    if not texts:
        return "exact"

    def is_json(t: str) -> bool:
        try:
            return isinstance(json.loads(t), (dict, list))
        except ValueError:
            return False

    if all(is_json(t) for t in texts):
        return "json"
    short = all(len(t.split()) <= 4 for t in texts)
    if short and len(set(t.lower() for t in texts)) <= max(1, len(texts) // 2):
        return "label"
    return "exact" if short else "f1"


def agreement(metric: str, candidate: dict[str, str], original: dict[str, str]) -> tuple[float | None, int]:
    """(score, n) of the candidate's answers against the original's, over the prompts both
    answered; (None, 0) when there are none."""
    keys = [k for k in original if k in candidate]
    if not keys:
        return None, 0
    if metric == "json":  # an original answer that is not JSON scores by exact match instead
        try:
            got = _score("json", [candidate[k] for k in keys], [original[k] for k in keys])
        except DataError:
            got = _score("exact", [candidate[k] for k in keys], [original[k] for k in keys])
    else:
        got = _score(metric, [candidate[k] for k in keys], [original[k] for k in keys])
    return float(got["score"]), len(keys)


@dataclass
class CandidateResult:
    ref: str
    run_id: str
    name: str
    agreement: float | None
    agreement_n: int
    accuracy: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    training_usd: float | None
    training_basis: str | None
    per_1k_usd: float | None
    monthly_usd: float | None
    cost_basis: str
    failed: int
    good_enough: bool
    caveats: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class MigrationReport:
    capture: CaptureRecord
    metric: str
    min_agreement: float
    queries_per_month: int
    today: _dt.date
    days_left: int | None
    original: dict[str, Any]
    candidates: list[CandidateResult]
    recommendation: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": "ftc migrate report",
            "date": self.today.isoformat(),
            "model": self.capture.model,
            "source": self.capture.source,
            "shutdown": self.capture.shutdown,
            "days_left": self.days_left,
            "capture": self.capture.to_dict(),
            "metric": self.metric,
            "min_agreement": self.min_agreement,
            "queries_per_month": self.queries_per_month,
            "original": self.original,
            "candidates": [c.to_dict() for c in self.candidates],
            "recommendation": self.recommendation,
        }

    def to_markdown(self) -> str:
        return _markdown(self)


def _answers(st: Any, run_id: str) -> dict[str, str]:
    return {k: r.output or "" for k, r in st.eval_results(run_id).items() if r.ok}


def _rescored(summary: dict[str, Any] | None, metric: str, answers: dict[str, str],
              examples: Sequence[Any]) -> dict[str, Any] | None:
    """The capture's summary scored with ``metric`` (a capture is scored when it is taken,
    maybe with another metric; the report compares every run by one)."""
    if not summary or summary.get("metric") == metric:
        return summary
    refs = {ex.key: ex.reference for ex in examples}
    keys = [k for k in answers if k in refs]
    scored = _score(metric, [answers[k] for k in keys], [refs[k] for k in keys])
    scored["score"] = float(scored.get("score", 0.0))
    return {**summary, "metric": metric, "metrics": scored}


def _money(v: float | None) -> str:
    return format_usd(v, none="unknown")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f} %"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.0f} ms"


def _recommend(cands: list[CandidateResult], min_agreement: float, q: int) -> dict[str, Any]:
    good = [c for c in cands if c.good_enough]
    if good:
        priced = [c for c in good if c.monthly_usd is not None]
        best = min(priced, key=lambda c: (c.monthly_usd, c.per_1k_usd or 0.0, c.name)) if priced else \
            max(good, key=lambda c: (c.agreement or 0.0, c.name))
        why = (f"the cheapest candidate at {q:,} queries/month ({_money(best.monthly_usd)}/month) whose agreement "
               f"with the original ({_pct(best.agreement)}) reaches {_pct(min_agreement)}") if priced else (
            f"agrees with the original on {_pct(best.agreement)} (no candidate has a known monthly cost)")
        return {"verdict": "replace", "candidate": best.name, "ref": best.ref, "why": why, "try": []}
    best = max(cands, key=lambda c: (c.agreement or 0.0, c.name), default=None)
    tries = ["train the closest candidate longer (one or two more epochs) or with a larger base model "
             "(`ftc migrate plan ... --base BACKEND=MODEL`), then report again",
             "read where it disagrees: `ftc eval show RUN` lists each answer beside the original's reference",
             "if the original's answers are themselves wrong on those prompts (see its accuracy), agreement is "
             "the wrong yardstick there: compare accuracy instead"]
    return {"verdict": "none good enough yet", "candidate": None, "ref": None,
            "why": (f"no candidate agrees with the original on {_pct(min_agreement)} of the prompts; the closest is "
                    f"{best.name} at {_pct(best.agreement)}") if best else "no candidate was evaluated",
            "try": tries}


def migration_report(model: str, candidates: Sequence[str], *, min_agreement: float = DEFAULT_MIN_AGREEMENT,
                     metric: str | None = None, queries_per_month: int = 10_000,
                     self_host_gpu: str | None = None, gpu_price_per_hour: float | None = None, prices: Any = None,
                     concurrency: int = 4, today: _dt.date | None = None, store: Any = None,
                     on_progress: Callable[[Any], None] | None = None,
                     on_candidate: Callable[[str], None] | None = None) -> MigrationReport:
    """Evaluate ``candidates`` (model references or ftc job ids, as ``ftc eval`` takes them)
    on the prompts captured from ``model`` and compare them (see the module docstring)."""
    if not candidates:
        raise UsageError("give at least one replacement to compare (--candidate REF)",
                         hint="e.g. --candidate local:JOB_ID --candidate together:MODEL (any `ftc eval` reference)")
    if not 0 < float(min_agreement) <= 1:
        raise UsageError(f"--min-agreement must be above 0 and at most 1, not {min_agreement!r}")
    cap = load_capture(model)
    prompts = Path(cap.prompts)
    if not prompts.is_file():
        raise UsageError(f"the captured prompts {prompts} are gone", hint="Capture the model again, if it still answers.")
    examples, sha = load_examples(prompts, cap.max_examples)
    if sha != cap.prompts_sha256:
        raise DataError(f"{prompts} changed since the capture (its sha256 differs)",
                        hint="Capture the model again, if it still answers.")
    today = today or _dt.date.today()
    own = store is None
    st = Store() if own else store
    try:
        original = _answers(st, cap.run_id)
        if not original:
            raise UsageError(f"the capture of {cap.model} holds no answers (run {cap.run_id})",
                             hint=f"Run `ftc migrate capture {cap.model}` again.")
        metric = metric or pick_metric(list(original.values()))
        max_tokens = int(st.get_eval_run(cap.run_id).params.get("max_tokens") or 128)
        summaries = []
        for ref in candidates:
            if on_candidate is not None:
                on_candidate(ref)
            summaries.append(evaluate(ref, prompts, metric=metric, concurrency=concurrency, max_tokens=max_tokens,
                                      max_examples=cap.max_examples, store=st, prices=prices,
                                      on_progress=on_progress))
        orig_summary = _rescored(st.get_eval_run(cap.run_id).summary, metric, original, examples)
        runs = summaries + ([orig_summary] if orig_summary else [])
        rep = build_report(runs, jobs=job_infos(st, runs), queries_per_month=queries_per_month, prices=prices,
                           today=today, self_host_gpu=self_host_gpu or DEFAULT_SELF_HOST_GPU,
                           gpu_price_per_hour=gpu_price_per_hour, store=st)
        results = []
        for ref, s in zip(candidates, summaries):
            o = rep.option(s["run_id"])
            agree, n = agreement(metric, _answers(st, s["run_id"]), original)
            results.append(CandidateResult(
                ref=ref, run_id=s["run_id"], name=o.name, agreement=agree, agreement_n=n,
                accuracy=float(s["metrics"]["score"]) if s.get("completed") else None,
                latency_p50_s=s["latency_s"]["p50"] if s.get("completed") else None,
                latency_p95_s=s["latency_s"]["p95"] if s.get("completed") else None,
                training_usd=o.training_cost_usd, training_basis=o.training_cost_basis,
                per_1k_usd=o.cost_per_1k_usd, monthly_usd=o.monthly_usd, cost_basis=o.cost_basis,
                failed=int(s.get("failed") or 0), good_enough=agree is not None and agree >= min_agreement,
                caveats=([f"{s['failed']} prompt(s) failed for this candidate and are left out; run the report "
                           "again to retry them"] if s.get("failed") else []) + [c["text"] for c in o.caveats]))
        orig: dict[str, Any] = {"ref": cap.ref, "run_id": cap.run_id, "answered": len(original),
                                "examples": len(examples), "capture_state": cap.state}
        if orig_summary:
            o = rep.option(orig_summary["run_id"])
            orig.update({"accuracy": float(orig_summary["metrics"]["score"]) if orig_summary.get("completed") else None,
                         "accuracy_metric": orig_summary.get("metric"),
                         "latency_p50_s": orig_summary["latency_s"]["p50"],
                         "latency_p95_s": orig_summary["latency_s"]["p95"],
                         "per_1k_usd": o.cost_per_1k_usd, "monthly_usd": o.monthly_usd, "cost_basis": o.cost_basis,
                         "caveats": [c["text"] for c in o.caveats]})
        shutdown = _dt.date.fromisoformat(cap.shutdown) if cap.shutdown else None
        return MigrationReport(capture=cap, metric=metric, min_agreement=float(min_agreement),
                               queries_per_month=queries_per_month, today=today,
                               days_left=(shutdown - today).days if shutdown else None, original=orig,
                               candidates=results,
                               recommendation=_recommend(results, float(min_agreement), queries_per_month))
    finally:
        if own:
            st.close()


# ------------------------------------------------------------------------------ output

def _markdown(r: MigrationReport) -> str:
    c = r.capture
    lines = [f"# Replacing {c.model}", ""]
    if r.days_left is not None:
        when = (f"shuts down on {c.shutdown}: **{r.days_left} day(s) left**" if r.days_left > 0 else
                f"was shut down on {c.shutdown}")
        lines.append(f"{c.source} {when}.")
    lines += [f"Yardstick: its answers to {r.original['answered']} of {r.original['examples']} prompts ({c.origin}), "
              f"captured {c.captured_at}. Agreement and accuracy by the `{r.metric}` metric; a candidate is good "
              f"enough from {_pct(r.min_agreement)} agreement. Costs at {r.queries_per_month:,} queries/month.", ""]
    rec = r.recommendation
    if rec["verdict"] == "replace":
        lines += [f"**Recommendation: {rec['candidate']}**: {rec['why']}.", ""]
    else:
        lines += [f"**None is good enough yet**: {rec['why']}.", ""] + [f"- Try: {t}" for t in rec["try"]] + [""]
    lines += ["| model | agreement | accuracy | p50 | p95 | training | $ / 1K queries | $ / month |",
              "|---|---|---|---|---|---|---|---|"]
    o = r.original
    lines.append(f"| {c.model} (original) | 100 % (itself) | {_pct(o.get('accuracy'))} | {_ms(o.get('latency_p50_s'))} "
                 f"| {_ms(o.get('latency_p95_s'))} | (done) | {_money(o.get('per_1k_usd'))} | {_money(o.get('monthly_usd'))} |")
    for x in r.candidates:
        mark = " ✓" if x.good_enough else ""
        lines.append(f"| {x.name}{mark} | {_pct(x.agreement)} (n={x.agreement_n}) | {_pct(x.accuracy)} | "
                     f"{_ms(x.latency_p50_s)} | {_ms(x.latency_p95_s)} | {_money(x.training_usd)} | "
                     f"{_money(x.per_1k_usd)} | {_money(x.monthly_usd)} |")
    lines += ["", f"![agreement and monthly cost]({REPORT_PNG})", "", "## How each figure was made", ""]
    lines.append(f"- Original: {o.get('cost_basis') or 'not priced'}.")
    for x in r.candidates:
        lines.append(f"- {x.name} ({x.ref}, eval run {x.run_id}): training: {x.training_basis or 'unknown'}; "
                     f"serving: {x.cost_basis or 'unknown'}.")
        for cav in x.caveats:
            lines.append(f"  - {cav}")
    for n in c.notes:
        lines.append(f"- Capture: {n}")
    return "\n".join(lines) + "\n"


def _render_png(r: MigrationReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    names = [x.name for x in r.candidates]
    agree = [(x.agreement or 0.0) * 100 for x in r.candidates]
    monthly = [x.monthly_usd or 0.0 for x in r.candidates]
    colors = ["#55A868" if x.good_enough else "#C44E52" for x in r.candidates]
    n = len(names)
    fig = Figure(figsize=(12, 1.4 + 0.6 * n), dpi=110)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    ys = list(range(n))[::-1]
    ax1.barh(ys, agree, color=colors)
    ax1.axvline(r.min_agreement * 100, color="black", linestyle="--", linewidth=1)
    ax1.set_xlim(0, 105)
    ax1.set_title(f"Agreement with the original (%, {r.metric}; dashed: the bar)\n{r.capture.model[:60]}",
                  fontsize=9)
    ax1.set_yticks(ys)
    ax1.set_yticklabels(names, fontsize=8)
    ax2.barh(ys, monthly, color="#4C72B0")
    orig = r.original.get("monthly_usd")
    if orig:
        ax2.axvline(orig, color="#C44E52", linestyle=":", linewidth=1)  # the original's cost today
    top = max(monthly + [orig or 0.0, 1.0])
    ax2.set_xlim(0, top * 1.3)
    for y, x in zip(ys, r.candidates):
        ax2.text((x.monthly_usd or 0.0) + top * 0.01, y, _money(x.monthly_usd), va="center", fontsize=8)
    ax2.set_title(f"Serving cost per month (USD, {r.queries_per_month:,} queries)\n"
                  f"the original today: {_money(orig)} (dotted line)", fontsize=9)
    fig.suptitle("ftc migrate report", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_migration_report(r: MigrationReport, out_dir: str | Path) -> dict[str, Path]:
    """report.md, report.json and report.png into ``out_dir``, each written atomically (the
    chart is rendered first: a failure leaves no partial set)."""
    d = Path(out_dir).expanduser()
    if d.exists() and not d.is_dir():
        raise UsageError(f"{d}: exists and is not a directory", hint="Give --out a directory.")
    return write_report_files(d, png=_render_png(r), markdown=r.to_markdown(), data=r.to_dict())
