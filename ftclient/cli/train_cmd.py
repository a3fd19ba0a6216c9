"""``ftc train``: check a job spec, show the estimate, submit, and watch the job."""

from __future__ import annotations

import sys
from typing import Any

import click

from .jobs_cmd import _esc, emit, finish_report, show_retry, stops_on_sigterm
from .output import duration
from .params import BUDGET


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def render_plan(plan: Any, console: Any) -> None:
    """The plan: backend, model, data and validation, estimate against the budget, warnings."""
    from rich.table import Table

    t = Table(title=f"Fine-tuning plan: {_esc(getattr(plan.spec, 'name', ''))} on {_esc(plan.backend)}",
              show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("base model", _esc(plan.model))
    t.add_row("method", f"{plan.spec.method} / {plan.spec.adapter}, {plan.spec.hyperparameters.epochs} epoch(s)")
    for v in plan.validation:
        ex = f"{v['examples']:,} examples, " if isinstance(v.get("examples"), int) else ""
        warn = f", [yellow]{v['warnings']} warning(s)[/yellow]" if v.get("warnings") else ""
        t.add_row(f"{v['role']} data", f"{_esc(v['path'])}: {ex}[green]valid[/green]{warn}")
    for what, value in getattr(plan, "details", None) or []:
        t.add_row(_esc(what), _esc(value))
    for u in plan.uploads:
        how = f"already uploaded ({_esc(u['provider_file_id'])})" if u["already_uploaded"] else "to upload"
        t.add_row(f"{u['role']} file", f"{_human_bytes(u['bytes'])}, sha256 {u['sha256'][:12]}..., {how}")
    est = plan.estimate  # a ftclient.CostEstimate (plan() refuses anything else)
    if plan.estimate_usd is not None:
        extra = []
        if est.billed_tokens:
            # A run on this machine bills time, not tokens: its token figure is what the trainer is fed.
            here = est.kind == "self-hosted"
            extra.append(f"{est.billed_tokens:,} " + ("tokens trained" if here else "billed tokens"))
        seconds = getattr(est, "duration_s", None)  # a LocalCostEstimate's calibrated time
        if isinstance(seconds, (int, float)):
            extra.append(f"~{duration(seconds)}")
        mark = "" if est.cost_exact else " [yellow](estimated)[/yellow]"
        t.add_row("estimate", f"[bold]${plan.estimate_usd:,.2f}[/bold]{mark}" + (f" ({', '.join(extra)})" if extra else ""))
    else:
        t.add_row("estimate", "[yellow]unknown[/yellow]")
    for c in est.caveats or []:
        t.add_row("[yellow]caveat[/yellow]", _esc(c))
    if plan.budget_usd is not None:
        held = plan.within_budget
        verdict = "" if held is None else (": [green]holds[/green]" if held else ": [red]exceeded[/red]")
        t.add_row("budget", f"${plan.budget_usd:,.2f}{verdict}")
    for w in plan.warnings:
        t.add_row("[yellow]warning[/yellow]", _esc(w))
    for e in getattr(plan, "not_ready", None) or []:
        t.add_row("[red]missing[/red]", _esc(e.message))
    console.print(t)


def _known_backend(name: str) -> None:
    """An unknown --backend: exit 2 with the known ones and the closest name (nothing loaded)."""
    from ..backends import available_backends, get_backend, normalize_name

    if normalize_name(name) not in available_backends():
        get_backend(name)  # raises the UsageError that names them


def _with_gpus(spec_path: str, backend: str, gpus: int) -> Any:
    """The spec with the backend's ``gpus`` option set from ``--gpus`` (the job stores this
    spec); only a backend that trains on this machine's GPUs has one."""
    from pathlib import Path

    from ..errors import UsageError
    from ..spec import load_spec

    from ..spec import JobSpec

    block_type = JobSpec.model_fields.get(backend)
    options = getattr(block_type, "annotation", None)
    if options is None or "gpus" not in getattr(options, "model_fields", {}):
        raise UsageError(f"--gpus applies to --backend local (a backend that trains on this machine), not {backend}",
                         hint="Hosted backends choose their own hardware; drop --gpus.")
    p = Path(spec_path)
    if not p.exists():
        raise UsageError(f"{p}: no such file", hint="Write one with `ftc spec init`.")
    spec = load_spec(p)
    block = getattr(spec, backend)
    return spec.model_copy(update={backend: block.model_copy(update={"gpus": gpus})})


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--backend", "-b", required=True, help="Where to train: openai, together (or any installed backend).")
@click.option("--dry-run", is_flag=True, help="Check, estimate and show the plan; send nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (the budget still applies).")
@click.option("--budget", type=BUDGET, default=None,
              help="Refuse to start above this many USD (default: the spec's budget_usd); also applied to the provider's own quote.")
@click.option("--detach", is_flag=True, help="Return once the job is created; follow it later with `ftc jobs watch`.")
@click.option("--gpus", type=click.IntRange(min=1), default=None,
              help="--backend local: train with this many processes, one per GPU (overrides local.gpus; "
                   "on a CPU device, CPU processes).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the plan, the job, its final status).")
@click.pass_context
@stops_on_sigterm
def train(ctx, spec_path, backend, dry_run, yes, budget, detach, gpus, as_json) -> None:
    """Fine-tune from a job SPEC on a backend: check, estimate, confirm, submit, watch.

    \b
    Nothing is sent before the data passed the backend's validation and the estimate
    is within the budget. A killed or interrupted run loses nothing:
    `ftc jobs resume` finishes it without ever creating a second job.

    \b
      ftc train job.yaml --backend openai --dry-run
      ftc train job.yaml --backend together --budget 20 --yes --detach
      ftc train job.yaml --backend local --gpus 4
    """
    from .. import jobs as J
    from ..errors import UsageError
    from ..secrets import redact
    from .output import err, info, out, progress, warn

    if not spec_path:
        raise UsageError("SPEC is empty", hint="Give the job spec's file, e.g. ftc train job.yaml --backend openai.")
    _known_backend(backend)  # before anything else: a typo is not a confirmation problem
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if not dry_run and not yes and not interactive:
        raise UsageError("refusing to ask for confirmation without a terminal",
                         hint="Pass --yes to submit without asking (the budget still applies), or --dry-run.")

    spec_arg: Any = spec_path if gpus is None else _with_gpus(spec_path, backend, gpus)
    plan = J.plan(spec_arg, backend, budget=budget, on_retry=show_retry, require_ready=not dry_run)
    if dry_run:
        if as_json:
            emit({"dry_run": True, "plan": plan.to_dict()})
        else:
            render_plan(plan, out)
        for e in plan.not_ready:  # also with --json: on stderr, so that it is seen
            warn(f"{e.message}; a real submission stops here (exit 2)")
        if not as_json:
            info("dry run: nothing was sent")
        return
    if not as_json:
        render_plan(plan, err)
    elif plan.warnings:
        for w in plan.warnings:
            warn(w)
    if not yes:
        price = f" for about ${plan.estimate_usd:,.2f}" if plan.estimate_usd is not None else ""
        if not click.confirm(f"Submit to {plan.backend}{price}?", default=False, err=True):
            err.print("not submitted")
            ctx.exit(1)

    with progress(enabled=not as_json) as bar:
        task = [bar.add_task(f"submitting to {plan.backend}", total=None)]
        plain = not bar.console.is_terminal or bar.disable
        last_msg: list[str] = []

        def on_progress(message: str, fraction: float | None) -> None:
            if not last_msg or last_msg[-1] != message:  # a new phase: a new bar (rich cannot unset a total)
                last_msg.append(message)
                bar.remove_task(task[0])
                task[0] = bar.add_task(redact(str(message)), total=None if fraction is None else 100)  # plain text
                if plain and not as_json:
                    info(f"[dim]{_esc(message)}[/dim]", markup=True)
            if fraction is not None:
                bar.update(task[0], total=100, completed=round(100 * fraction))

        def provider_confirm(q: "J.Quote") -> bool:
            ours = f"${q.estimate_usd:,.2f}" if q.estimate_usd is not None else "unknown"
            theirs = f"${q.provider_usd:,.2f}" if q.provider_usd is not None else "not given"
            bar.stop()
            try:
                err.print(f"estimate: ftc {ours}, {_esc(plan.backend)} {theirs}"
                          + (f" (budget ${q.budget_usd:,.2f})" if q.budget_usd is not None else ""), highlight=False)
                if yes:
                    return True
                return click.confirm(f"Create the job at {plan.backend}'s price?", default=False, err=True)
            finally:
                bar.start()

        job = J.submit(plan, confirm=provider_confirm, on_progress=on_progress, on_retry=show_retry)

    if not as_json:
        err.print(f"submitted [bold]{job.id}[/bold] ({_esc(plan.backend)} job {_esc(job.provider_job_id or '?')})",
                  highlight=False)
    if detach:
        from ..store import Store

        with Store() as st:
            st.release(job.id)  # nobody watches it now: `ftc jobs resume` may take it over
        if as_json:
            emit({"plan": plan.to_dict(), "job": job.to_dict(), "status": None})
        else:
            out.print(job.id)
            info(f"Follow it with `ftc jobs watch {job.id}`.")
        return

    from ..store import Store
    from .jobs_cmd import WatchView

    with Store() as st:
        with WatchView(job) as view:
            status = J.watch(job.id, on_update=view, store=st, on_retry=show_retry)
        job = st.get_job(job.id)
    if as_json:
        code = 0 if job.state == "succeeded" else 1
        emit({"plan": plan.to_dict(), "job": job.to_dict(), "status": status.to_dict()})
        ctx.exit(code)
    ctx.exit(finish_report(job, status, as_json=False))
