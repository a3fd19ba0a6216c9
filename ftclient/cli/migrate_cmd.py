"""``ftc migrate``: move a hosted fine-tune to an open model before its provider shuts it down.

    ftc migrate scan                                       the account's fine-tunes and days left
    ftc migrate capture MODEL [--data FILE] [--budget USD] save its answers (the yardstick)
    ftc migrate plan MODEL --to local,together --out DIR   costed replacement specs
    ftc train DIR/together/job.yaml --backend together     (as any job)
    ftc migrate report MODEL --candidate REF... --out DIR  is a replacement as good, and its cost
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..budget import format_usd
from .params import BUDGET, POSITIVE_PRICE, prices_option


def _emit(obj: Any) -> None:
    from ..secrets import redact_obj
    from .output import emit_json

    emit_json(redact_obj(obj))


def _money(v: float | None) -> str:
    return format_usd(v, none="unknown")


@click.group("migrate")
def migrate() -> None:
    """Move a hosted fine-tune to an open model before its provider shuts it down.

    \b
    1. ftc migrate scan                      each fine-tuned model, its data and days left
    2. ftc migrate capture MODEL             save its answers before the shutdown
    3. ftc migrate plan MODEL --to local,together --out migration/
    4. ftc train migration/together/job.yaml --backend together   (and the others)
    5. ftc migrate report MODEL --candidate JOB_ID ... --out migration/report
    """


@migrate.command("scan")
@click.option("--from", "source", default=None, metavar="BACKEND",
              help="The backend to scan (default: the one installed backend that lists its fine-tunes).")
@click.option("--no-download", is_flag=True,
              help="Do not download the files the provider hands out (their example counts stay unknown).")
@click.option("--json", "as_json", is_flag=True, help="Print the scan as JSON.")
def scan_cmd(source, no_download, as_json) -> None:
    """List every fine-tuning job: model, base, dates, data, hyperparameters, days left."""
    from rich.table import Table

    from ..migrate import scan_fine_tunes
    from .output import esc, info, out, progress

    with progress(enabled=not as_json) as bar:
        task = bar.add_task("scanning fine-tunes", total=None)

        def on_progress(done: int, total: int, job_id: str) -> None:
            bar.update(task, completed=done, total=total)

        result = scan_fine_tunes(source, download_files=not no_download, on_progress=on_progress)
    if as_json:
        _emit(result.to_dict())
        return
    if not result.fine_tunes:
        info(f"No fine-tuning jobs in this {result.source} account.")
        return
    t = Table(title=f"{result.source} fine-tunes on {result.today.isoformat()}", title_justify="left")
    for col in ("model", "base", "job", "created", "state", "days left", "training data", "epochs"):
        t.add_column(col, overflow="fold")
    for r in result.fine_tunes:
        ft = r.fine_tune
        tr = r.training
        data = "none" if tr is None else (
            "gone" if not tr.exists else
            f"{tr.bytes or 0:,} B" + (f", {tr.examples} ex." if tr.examples is not None else "")
            + (", downloadable" if tr.downloadable else ", not downloadable" if tr.downloadable is False else ""))
        days = "" if r.days_left is None else ("shut down" if r.days_left <= 0 else str(r.days_left))
        state = r.state if r.state != "no model" else ft.status
        t.add_row(esc(ft.fine_tuned_model or "-"), esc(ft.base_model), esc(ft.job_id),
                  ft.created_at.date().isoformat() if ft.created_at else "", esc(state), days, esc(data),
                  esc(str(ft.hyperparameters.get("n_epochs", ""))))
    out.print(t)
    serving = [r for r in result.fine_tunes if r.state == "serving"]
    if serving:
        soonest = min((r for r in serving if r.days_left is not None), key=lambda r: r.days_left, default=None)
        if soonest is not None:
            info(f"{len(serving)} model(s) still answer; the first shuts down on {soonest.shutdown} "
                 f"({soonest.days_left} day(s) left). Next: ftc migrate capture MODEL")


@migrate.command("capture")
@click.argument("model")
@click.option("--data", "data_path", type=click.Path(dir_okay=False), default=None,
              help="The prompts to ask (ChatML JSONL with reference answers). Default: the job's validation "
                   "file, else the last 10% of its training file, where the provider hands them out.")
@click.option("--budget", type=BUDGET, default=None, help="Refuse (exit 1, nothing sent) above this many USD.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (the budget still applies).")
@click.option("--max-examples", type=click.IntRange(min=1), default=None, help="Only the first N prompts.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Requests in flight at once.")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stay under this many requests per minute.")
@click.option("--tpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stay under this many tokens per minute.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None,
              help="Longest answer asked for (default: twice the longest reference answer, at least 64).")
@click.option("--json", "as_json", is_flag=True, help="Print the capture record as JSON.")
def capture_cmd(model, data_path, budget, yes, max_examples, concurrency, rpm, tpm, max_tokens, as_json) -> None:
    """Ask fine-tuned MODEL every prompt and keep its answers as the yardstick.

    The answers are an `ftc eval` run: interrupted, the same command resumes without
    sending an answered prompt again. The cost is shown before anything is sent.
    """
    from ..errors import UsageError
    from ..migrate import capture_answers
    from .eval_cmd import _progress_bar
    from .output import err, info, warn

    interactive = sys.stdin is not None and sys.stdin.isatty()
    if not yes and not interactive:
        raise UsageError("refusing to ask for confirmation without a terminal",
                         hint="Pass --yes to capture without asking (--budget still applies).")

    def on_estimate(est: Any, prompts: Any, origin: str) -> None:
        info(f"{est.examples} prompt(s) from {origin}: {est.cached} already answered, {est.to_send} to ask; "
             f"about {_money(est.usd)} ({est.basis})")

    def confirm(est: Any) -> bool:
        return yes or click.confirm(f"Ask {est.to_send} prompt(s) for about {_money(est.usd)}?", default=False,
                                    err=True)

    state: dict[str, Any] = {}
    with _progress_bar() as bar:
        def on_progress(p: Any) -> None:
            if "task" not in state:
                state["task"] = bar.add_task("capture", total=p.total, completed=p.done, failed=0, rate="",
                                             retries="")
            bar.update(state["task"], completed=p.done, failed=p.failed,
                       rate=f"{p.rate_qps:.1f} q/s" if p.sent else "",
                       retries=f"{p.retries} retries" if p.retries else "")

        rec = capture_answers(model, data_path, budget_usd=budget, confirm=confirm, max_examples=max_examples,
                      concurrency=concurrency, rpm=rpm, tpm=tpm, max_tokens=max_tokens, on_estimate=on_estimate,
                      on_progress=on_progress)
    if as_json:
        _emit(rec.to_dict())
    else:
        err.print(f"captured {rec.answered} of {rec.examples} answer(s) of {rec.model} in eval run {rec.run_id}",
                  highlight=False, markup=False)
        info(f"Next: ftc migrate plan {rec.model} --to local,together --out migration/")
    for n in rec.notes:
        warn(n)
    if rec.state != "complete":
        raise click.exceptions.Exit(1)


def _bases(values: tuple[str, ...]) -> dict[str, str]:
    from ..errors import UsageError

    out = {}
    for v in values:
        k, sep, m = v.partition("=")
        if not sep or not k.strip() or not m.strip():
            raise UsageError(f"--base {v!r}: give BACKEND=MODEL", hint="e.g. --base together=Qwen/Qwen2.5-7B-Instruct")
        out[k.strip().lower()] = m.strip()
    return out


@migrate.command("plan")
@click.argument("model")
@click.option("--to", "to", required=True, metavar="BACKEND[,BACKEND...]",
              help="Where the replacements train, e.g. local,together.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for data/, one BACKEND/job.yaml each and plan.json (created).")
@click.option("--training-data", type=click.Path(dir_okay=False), default=None,
              help="Your copy of the training file, when the provider does not hand it out (checked by size).")
@click.option("--allow-different-data", is_flag=True,
              help="Train on --training-data even when its size differs from the file the provider trained on.")
@click.option("--base", "bases", multiple=True, metavar="BACKEND=MODEL",
              help="The base model for one backend (default: chosen from the price catalogue).")
@click.option("--queries-per-month", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="The volume $ per month is given for.")
@click.option("--self-host-gpu", default="runpod:rtx4090-community", show_default=True, metavar="HOST:GPU",
              help="The GPU offer a self-trained candidate is priced on.")
@prices_option
@click.option("--json", "as_json", is_flag=True, help="Print plan.json's content.")
def plan_cmd(model, to, out_dir, training_data, allow_different_data, bases, queries_per_month, self_host_gpu,
             prices_file, as_json) -> None:
    """Write one costed job spec per replacement of MODEL, trained on its own training data."""
    from rich.table import Table

    from ..migrate import plan_migration
    from .output import esc, info, out, warn

    plan = plan_migration(model, to.split(","), out_dir, training_data=training_data,
                          allow_different_data=allow_different_data, base=_bases(bases),
                          queries_per_month=queries_per_month, self_host_gpu=self_host_gpu, prices=prices_file)
    if as_json:
        _emit(plan.to_dict())
        return
    info(f"training data: {plan.data['examples']} examples, {plan.data['origin']}")
    t = Table(title=f"Replacing {plan.model} ({plan.days_left} day(s) left)" if plan.days_left is not None
              else f"Replacing {plan.model}", title_justify="left")
    for col in ("backend", "base model", "epochs", "training", "$ / 1K queries", f"$ / month @ {plan.queries_per_month:,}",
                "spec"):
        t.add_column(col, overflow="fold")
    cur = plan.current
    t.add_row(esc(plan.source) + " (today)", esc(plan.base_model) + " (fine-tuned)", "", "(done)",
              _money(cur["per_1k_usd"]), _money(cur["monthly_usd"]), "")
    for c in plan.candidates:
        t.add_row(esc(c.backend), esc(c.base_model), str(c.hyperparameters.get("epochs")), _money(c.training_usd),
                  _money(c.per_1k_usd), _money(c.monthly_usd), esc(c.spec))
    out.print(t)
    for c in plan.candidates:
        for n in c.notes:
            warn(f"{c.backend}: {n}")
    for n in plan.notes:
        warn(n)
    info("Next: " + "; ".join(c.train_command for c in plan.candidates))


@migrate.command("report")
@click.argument("model")
@click.option("--candidate", "candidates", multiple=True, required=True, metavar="REF",
              help="A replacement to compare: an ftc job id or any `ftc eval` model reference (repeat).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for report.md, report.json and report.png (created).")
@click.option("--min-agreement", type=click.FloatRange(min=0, max=1, min_open=True), default=0.9, show_default=True,
              help="The agreement with the original's answers a replacement needs.")
@click.option("--metric", type=click.Choice(["exact", "f1", "json", "contains", "label"], case_sensitive=False),
              default=None, help="How answers are compared (default: picked from the captured answers).")
@click.option("--queries-per-month", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="The volume costs are given for.")
@click.option("--self-host-gpu", default="runpod:rtx4090-community", show_default=True, metavar="HOST:GPU",
              help="The always-on GPU offer self-hosted candidates are priced on.")
@click.option("--gpu-price", type=POSITIVE_PRICE, default=None, metavar="USD_PER_HOUR",
              help="Override that GPU's price per hour.")
@prices_option
@click.option("--json", "as_json", is_flag=True, help="Print report.json's content.")
def report_cmd(model, candidates, out_dir, min_agreement, metric, queries_per_month, self_host_gpu, gpu_price,
               prices_file, as_json) -> None:
    """Evaluate each candidate on MODEL's captured prompts and say whether one can replace it."""
    from rich.table import Table

    from ..migrate import migration_report, write_migration_report
    from .output import esc, info, out

    rep = migration_report(model, candidates, min_agreement=min_agreement,
                           metric=metric.lower() if metric else None, queries_per_month=queries_per_month,
                           self_host_gpu=self_host_gpu, gpu_price_per_hour=gpu_price, prices=prices_file,
                           on_candidate=lambda ref: None if as_json else info(f"evaluating {ref} ..."))
    paths = write_migration_report(rep, out_dir)
    if as_json:
        _emit(rep.to_dict())
        return

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 100:.1f} %"

    t = Table(title=f"Replacing {rep.capture.model}" + (f" ({rep.days_left} day(s) left)" if rep.days_left is not None
                                                         else ""), title_justify="left")
    for col in ("candidate", "agreement", "accuracy", "p50", "training", "$ / 1K", "$ / month"):
        t.add_column(col, overflow="fold")
    o = rep.original
    t.add_row(esc(rep.capture.model) + " (original)", "-", pct(o.get("accuracy")),
              "n/a" if o.get("latency_p50_s") is None else f"{o['latency_p50_s'] * 1000:.0f} ms", "(done)",
              _money(o.get("per_1k_usd")), _money(o.get("monthly_usd")))
    for c in rep.candidates:
        t.add_row(esc(c.name) + (" ✓" if c.good_enough else ""), pct(c.agreement), pct(c.accuracy),
                  "n/a" if c.latency_p50_s is None else f"{c.latency_p50_s * 1000:.0f} ms", _money(c.training_usd),
                  _money(c.per_1k_usd), _money(c.monthly_usd))
    out.print(t)
    rec = rep.recommendation
    if rec["verdict"] == "replace":
        out.print(f"Recommendation: {esc(rec['candidate'])}: {esc(rec['why'])}.", highlight=False)
    else:
        out.print(f"None is good enough yet: {esc(rec['why'])}.", highlight=False)
        for x in rec["try"]:
            out.print(f"  - try: {esc(x)}", highlight=False)
    info(f"report written to {paths['md']} (+ {paths['json'].name}, {paths['png'].name})")
