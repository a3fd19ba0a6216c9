"""``ftc compare``: eval runs side by side, a recommendation for a volume, and a report folder."""

from __future__ import annotations

from typing import Any

import click

from .params import prices_option


@click.command("compare")
@click.argument("refs", nargs=-1, metavar="RUN_OR_JOB...")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for report.md, report.json and report.png (created).")
@click.option("--queries-per-month", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Inference volume the recommendation is for.")
@click.option("--tolerance", type=click.FloatRange(min=0, max=1, max_open=True), default=0.02, show_default=True,
              help="Scores within this of the best count as tied (the cheaper option wins the tie).")
@click.option("--self-host-gpu", default="runpod:rtx4090-community", show_default=True, metavar="HOST:GPU",
              help="The always-on GPU offer (from the price catalogue) among the ways self-hosted options are "
                   "priced; the catalogue's per-second GPUs and, for a run on a CPU, its CPU instances are priced too.")
@click.option("--gpu-price", type=click.FloatRange(min=0), default=None, metavar="USD_PER_HOUR",
              help="Override that GPU's price per hour (e.g. your own machine's).")
@prices_option
@click.option("--json", "as_json", is_flag=True, help="Print report.json's content instead of the table.")
def compare(refs, out_dir, queries_per_month, tolerance, self_host_gpu, gpu_price, prices_file, as_json) -> None:
    """Compare eval runs: score, cost per 1K queries, latency, training cost and time.

    Each RUN_OR_JOB is an eval run id (or a unique prefix), or an ftc job id: then the
    newest complete eval run of that job's model is used. Writes report.md, report.json
    and report.png into --out and prints the table and the recommendation.
    """
    from ..errors import UsageError
    from ..report import build_report, job_infos, write_report
    from ..store import Store

    if not refs:
        raise UsageError("give at least one eval run id or job id",
                         hint="e.g. ftc compare RUN1 RUN2 --out report/ (`ftc eval` prints each run's id)")
    with Store() as store:
        runs = [resolve_run(store, r) for r in refs]
        jobs = job_infos(store, [r.summary for r in runs])
    report = build_report([r.summary for r in runs], jobs=jobs, queries_per_month=queries_per_month,
                          prices=prices_file, tolerance=tolerance, self_host_gpu=self_host_gpu,
                          gpu_price_per_hour=gpu_price)
    paths = write_report(report, out_dir)
    if as_json:
        from .output import emit_json

        emit_json(report.to_dict())
        return
    _render(report)
    from .output import info

    info(f"report written to {paths['md']} (+ {paths['json'].name}, {paths['png'].name})")


def resolve_run(store: Any, ref: str) -> Any:
    """The finished eval run ``ref`` names: a run id or unique prefix, else a job id (its newest
    complete eval run, else its newest partial one). A ``partial`` run (some examples failed)
    is compared with a caveat; UsageError when nothing matches, several runs match, or the run
    did not run to its end (``running``, ``interrupted``)."""
    from ..errors import UsageError

    ref = (ref or "").strip()
    if not ref:
        raise UsageError("an empty run id was given")
    try:
        run = store.get_eval_run(ref)
    except UsageError:
        ids = [r.id for r in store.list_eval_runs()]
        if sum(1 for i in ids if i.startswith(ref) or (i.startswith("eval-") and i[5:].startswith(ref))) > 1:
            raise  # several runs match: the store's message lists them
        run = None
    if run is not None:
        if run.state not in _COMPARABLE or not run.summary:
            raise UsageError(f"eval run {run.id} is {run.state}, not complete: it has no results to compare",
                             hint="Run the evaluation to the end (the same `ftc eval` command resumes it), "
                                  "or leave this run out.")
        return run
    try:
        job = store.get_job(ref)
    except UsageError:
        raise UsageError(f"no eval run or job matches {ref!r}",
                         hint="`ftc eval` prints each run's id; `ftc jobs list` lists jobs.") from None
    done = [r for r in store.list_eval_runs()
            if r.state in _COMPARABLE and r.summary and r.summary.get("job_id") == job.id]
    if not done:
        raise UsageError(f"job {job.id} has no complete eval run",
                         hint=f"Evaluate its model first: ftc eval {job.id} --data EVAL.jsonl")
    return max(done, key=lambda r: (r.state == "complete", str(r.summary.get("finished_at") or r.updated_at or ""),
                                    r.id))


#: Eval run states ``ftc compare`` takes: ``partial`` ones with the report's "failed examples" caveat.
_COMPARABLE = ("complete", "partial")


def _render(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..budget import format_usd
    from ..report.format import duration_text, ms_text, per_1k_text
    from .output import out

    rec = report.recommendation
    t = Table(title=f"ftc compare: {report.queries_per_month:,} queries/month, metric {report.metric}",
              title_justify="left", caption=f"Rule: {report.rule}.", caption_justify="left")
    t.add_column("option", overflow="fold", ratio=1)
    t.add_column("score", justify="right", no_wrap=True)
    t.add_column("95% CI", justify="right", no_wrap=True)
    t.add_column("per 1K q", justify="right", no_wrap=True)
    t.add_column("per month", justify="right", no_wrap=True)
    t.add_column("p50", justify="right", no_wrap=True)
    t.add_column("p95", justify="right", no_wrap=True)
    t.add_column("training", justify="right", no_wrap=True)
    t.add_column("time", justify="right", no_wrap=True)
    for o in report.options:
        name = escape(o.name)
        if o.name == rec.get("recommended"):
            name = f"[bold green]{name}[/bold green] (winner)"
        elif not o.eligible:
            name = f"[dim]{name}[/dim] (left out)"
        ci = "-" if o.score_ci95 is None else f"{o.score_ci95[0] * 100:.1f}-{o.score_ci95[1] * 100:.1f}%"
        t.add_row(name, "-" if o.score is None else f"{o.score:.3f}", ci, per_1k_text(o.cost_per_1k_usd),
                  format_usd(o.monthly_usd),
                  ms_text(o.latency_s.get("p50")), ms_text(o.latency_s.get("p95")),
                  format_usd(o.training_cost_usd) if o.training_cost_usd is not None else "-",
                  duration_text(o.training_time_s))
    for w in report.warnings:
        out.print(f"[bold red]WARNING:[/bold red] {escape(w['text'])}", soft_wrap=True, highlight=False)
    out.print(t)
    out.print(escape(rec["text"]).replace("**", ""), soft_wrap=True, highlight=False)
    for c in rec.get("caveats") or []:
        out.print(f"  [yellow]caveat:[/yellow] {escape(c['text'])}", soft_wrap=True, highlight=False)
    out.print(f"Break-even, cloud vs self-hosting: {escape(report.break_even['text'])}.", soft_wrap=True,
              highlight=False)
    n_caveats = sum(len(o.caveats) for o in report.options)
    if n_caveats:
        out.print(f"{n_caveats} caveat(s) in all, each with its option, in report.md.", soft_wrap=True, highlight=False)
