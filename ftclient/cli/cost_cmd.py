"""``ftc cost``: estimate and compare fine-tuning cost, offline (``estimate --calibrate``: a few local steps)."""

from __future__ import annotations

from typing import Any

import click

from ..budget import within_budget
from .params import BUDGET, PRICE, prices_option


def _common_prices(f):
    return prices_option(f)


@click.group()
def cost() -> None:
    """Estimate and compare fine-tuning cost, offline."""


def _spec_option(f):
    return click.option(
        "--spec",
        "spec_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="A job spec: its training file, epochs, method, adapter and budget are the defaults.",
    )(f)


def _from_spec(spec_path, file, epochs, method, adapter, budget=None):
    """Fill FILE, epochs, method, adapter and budget from a spec where not given."""
    from ..errors import UsageError

    if spec_path is None:
        if file is None:
            raise UsageError("give a data FILE or --spec JOB.yaml", hint="e.g. ftc cost compare data/train.jsonl")
        return file, epochs, method or "sft", adapter or "lora", budget, None
    from ..spec import load_spec

    job = load_spec(spec_path)
    return (
        file or str(job.data.train),
        epochs or job.hyperparameters.epochs,
        method or job.method,
        adapter or job.adapter,
        budget if budget is not None else job.budget_usd,
        job,
    )


@cost.command("estimate")
@click.argument("file", type=click.Path(dir_okay=True), required=False)
@click.option("--model", "-m", default=None,
              help="PROVIDER:MODEL, e.g. openai:gpt-4.1-mini, a GPU offer (modal:h100), or local:MODEL "
                   "(local:default, local:PATH). With --spec: the model of its first hosted backend block, by "
                   "backend name (the local one with --calibrate; one that takes Parquet for a Parquet file).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: the OpenAI cookbook heuristic).")
@click.option("--method", type=click.Choice(["sft", "dpo"], case_sensitive=False), default=None, help="sft (default) or dpo.")
@click.option("--adapter", type=click.Choice(["lora", "qlora", "full"], case_sensitive=False), default=None,
              help="lora (default), qlora or full.")
@click.option("--calibrate", is_flag=True,
              help="local:MODEL only: run a few real training steps here and predict the whole run's time and cost.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="local: optimizer steps the calibration runs (default 8, the first one a warm-up).")
@click.option("--batch-size", type=click.IntRange(min=1, max=4096), default=None, help="local: batch size (default 8).")
@click.option("--max-seq-len", type=click.IntRange(min=32), default=None, help="local: max tokens per example (default 2048).")
@click.option("--gpu-price-per-hour", type=PRICE, default=None, metavar="USD",
              help="local: what an hour of this machine costs (else the spec's local.gpu_price_per_hour / local.gpu).")
@_spec_option
@_common_prices
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def estimate(file, model, epochs, method, adapter, calibrate, steps, batch_size, max_seq_len, gpu_price_per_hour,
             spec_path, prices_file, as_json) -> None:
    """Training cost of fine-tuning MODEL on FILE (JSONL of ChatML examples; for Together also
    a pre-tokenized Parquet file, whose token counts are exact).

    For local:MODEL the time is measured, not assumed: --calibrate runs the first steps of the
    real local training on this machine and predicts the whole run (cached, so later estimates
    and `ftc train` use it).
    """
    from ..errors import UsageError

    file, epochs, method, adapter, budget, job = _from_spec(spec_path, file, epochs, method, adapter)
    if model is None and job is not None:
        model = _model_of_spec(job, file, calibrate)
    if model is None:
        raise UsageError("give --model PROVIDER:MODEL", hint="e.g. --model openai:gpt-4.1-mini, or --model local:default")
    from ..cost import is_local_ref

    if not is_local_ref(model):
        local_only = [n for n, v in (("--calibrate", calibrate), ("--steps", steps), ("--batch-size", batch_size),
                                      ("--max-seq-len", max_seq_len), ("--gpu-price-per-hour", gpu_price_per_hour))
                      if v not in (None, False)]
        if local_only:
            raise UsageError(f"{', '.join(local_only)}: only for a local model (--model local:MODEL)",
                             hint="e.g. ftc cost estimate data/train.jsonl --model local:default --calibrate")
        _estimate_hosted(file, model, epochs, method, adapter, budget, prices_file, as_json, job)
        return
    if steps is not None and not calibrate:
        raise UsageError("--steps is the number of calibration steps: add --calibrate")
    if calibrate:
        _calibrate(file, model, epochs, method, adapter, batch_size, max_seq_len, gpu_price_per_hour, budget, job,
                   prices_file, steps, as_json)
        return
    from ..cost import estimate_local

    est = estimate_local(file, model, epochs=epochs, method=method, adapter=adapter, batch_size=batch_size,
                         max_seq_len=max_seq_len, spec=job, usd_per_hour=gpu_price_per_hour, prices=prices_file)
    within = within_budget(est.cost_usd, budget)
    if as_json:
        _emit_with_budget(est.to_dict(), budget, within)
        return
    _render_local(est, budget, within)


def _emit_with_budget(d: dict, budget, within) -> None:
    """An estimate as JSON, with the budget and whether it holds when a budget was given."""
    from .output import emit_json

    if budget is not None:
        d["budget_usd"], d["within_budget"] = budget, within
    emit_json(d)


def _estimate_hosted(file, model, epochs, method, adapter, budget, prices_file, as_json, job=None) -> None:
    from ..cost import estimate_cost
    from .output import out

    est = estimate_cost(file, model, epochs=epochs, method=method, adapter=adapter, prices=prices_file,
                        self_host_model=_self_host_model(job))
    within = within_budget(est.cost_usd, budget)
    if as_json:
        _emit_with_budget(est.to_dict(), budget, within)
        return
    from rich.table import Table

    t = Table(title=f"Fine-tuning cost: {_esc(est.model)}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    mark = "" if est.token_count_exact else " [yellow](estimated)[/yellow]"
    t.add_row("examples", f"{est.examples:,}")
    t.add_row("tokens per epoch", f"{est.tokens_per_epoch:,}{mark}")
    t.add_row("epochs", f"{est.epochs} ({_esc(est.epochs_basis)})")
    t.add_row("billed tokens", f"{est.billed_tokens:,}{mark}")
    cost_mark = "" if est.cost_exact else " [yellow](estimated)[/yellow]"
    t.add_row("cost", "[yellow]unknown[/yellow]" if est.cost_usd is None
              else f"[bold]${est.cost_usd:,.2f}[/bold]{cost_mark}")
    t.add_row("how", _esc(est.cost_basis))
    t.add_row("token count", _esc(est.token_count_basis))
    p = est.price
    stale = " [red]STALE[/red]" if p.get("stale") else ""
    t.add_row("price source", _esc(f"{p.get('source')} (as of {p.get('as_of')})") + stale)
    for c in est.caveats:
        t.add_row("[yellow]caveat[/yellow]", _esc(c))
    if budget is not None:
        t.add_row("budget", f"${budget:,.2f}: " + ("[green]holds[/green]" if within else "[red]exceeded[/red]"))
    out.print(t)


# ------------------------------------------------------------------ local estimates

from .output import duration as _dur  # noqa: E402 - light, shared with train's plan


def _esc(s) -> str:
    from rich.markup import escape

    return escape(str(s))


def _usd(v) -> str:
    return "-" if v is None else (f"${v:,.2f}" if v >= 0.995 or v == 0 else f"${v:.4f}")


def _render_local(est, budget, within) -> None:
    from rich.table import Table

    from .output import out

    t = Table(title=f"Local training estimate: {_esc(est.model)}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    mark = "" if est.token_count_exact else " [yellow](estimated)[/yellow]"
    t.add_row("examples", f"{est.examples:,}" + (f" ({est.rows:,} rows trained)" if est.rows != est.examples else ""))
    t.add_row("tokens per epoch", f"{est.tokens_per_epoch:,}{mark}")
    t.add_row("epochs", f"{est.epochs} ({_esc(est.epochs_basis)})")
    t.add_row("optimizer steps", f"{est.optimizer_steps:,} ({_esc(est.steps_basis)})")
    if est.device:
        t.add_row("device", _esc(est.device))
    t.add_row("time", ("[bold]" + _dur(est.duration_s) + "[/bold]" if est.duration_s is not None
                       else "[yellow]unknown[/yellow]") + f" ({_esc(est.time_basis)})")
    cost = "[yellow]unknown[/yellow]" if est.cost_usd is None else f"[bold]{_usd(est.cost_usd)}[/bold]"
    t.add_row("cost", f"{cost} ({_esc(est.cost_basis)})")
    t.add_row("token count", _esc(est.token_count_basis))
    for c in est.caveats:
        t.add_row("[yellow]caveat[/yellow]", _esc(c))
    if budget is not None:
        verdict = "unknown" if within is None else ("[green]holds[/green]" if within else "[red]exceeded[/red]")
        t.add_row("budget", f"${budget:,.2f}: {verdict}")
    out.print(t)


class _CalibrationProgress:
    """Phases and steps of a calibration on stderr: a rich progress bar on a terminal, one line per
    phase otherwise; nothing with --json."""

    def __init__(self, bar, quiet: bool):
        self.bar, self.quiet = bar, quiet
        self.task = None
        self.phase = None

    def __call__(self, phase: str, done, total) -> None:
        if self.quiet:
            return
        label = "training steps" if phase == "step" else phase
        if self.bar is not None and not self.bar.disable:
            if self.task is None:
                self.task = self.bar.add_task(label, total=None)
            self.bar.update(self.task, description=label, completed=done or 0, total=total)
            return
        if label != self.phase:
            from .output import info

            info(f"calibrating: {label}" + (f" ({total})" if phase == "step" and total else "") + " ...")
        self.phase = label


def _self_host_model(job: Any) -> str:
    """The model a GPU offer (``modal:h100``) trains and serves: the spec's model for the backend
    that trains here (the same model self-hosted), else the catalogue's default."""
    from ..backends import here_backend
    from ..cost import DEFAULT_SELF_HOST_MODEL

    if job is None:  # no spec: nothing to ask the registry (reading it imports every backend class)
        return DEFAULT_SELF_HOST_MODEL
    here = here_backend()
    return job.model_for(here) if here else DEFAULT_SELF_HOST_MODEL


def _model_of_spec(job: Any, file: Any, calibrate: bool) -> str | None:
    """The model ``ftc cost estimate --spec`` prices when given no --model: with --calibrate,
    the spec's model for the backend that calibrates on this machine; for a pre-tokenized
    Parquet file, its model for a backend that takes such files (the file's token ids are
    that model's); else the model the first hosted backend's block names."""
    from ..backends import available_backends, here_backend
    from ..data.parquet import is_parquet_path, parquet_backends

    here = here_backend()
    if calibrate:
        return f"{here}:{job.model_for(here)}" if here else None
    if is_parquet_path(file):
        for name in parquet_backends():
            if job.model_for(name) != "default":
                return f"{name}:{job.model_for(name)}"
    for name in available_backends():
        model = getattr(getattr(job, name, None), "model", None)
        if model and name != here:
            return f"{name}:{model}"
    return None


def _calibrate(file, model, epochs, method, adapter, batch_size, max_seq_len, gpu_price_per_hour, budget, job,
               prices_file, steps, as_json) -> None:
    from ..backends import get_backend
    from ..cost import epochs_for, here_backend_of, local_gpu_price
    from ..data.parquet import is_parquet_path, not_jsonl_error
    from ..tokens import as_records
    from .output import progress

    if is_parquet_path(file):
        raise not_jsonl_error(file, f"local training ({model})")
    n = len(as_records(file))
    ep, ep_basis = epochs_for(epochs, n)
    name = here_backend_of(model)
    local = get_backend(name)
    spec = local.calibration_spec(file, model, spec=job, epochs=ep, method=method, adapter=adapter,
                                  batch_size=batch_size, max_seq_len=max_seq_len)
    price = local_gpu_price(usd_per_hour=gpu_price_per_hour, spec=spec, prices=prices_file, backend=name)
    with progress(enabled=not as_json) as bar:
        cal = local.calibrate(spec, steps=steps, price=price, progress=_CalibrationProgress(bar, as_json))
    cost = cal.cost_usd
    if price is None:
        cost = 0.0
    within = within_budget(cost, budget)
    if as_json:
        d = cal.to_dict()
        d.update(epochs=ep, epochs_basis=ep_basis, cost_usd=None if cost is None else round(cost, 4),
                 cost_basis=(cal.cost or {}).get("basis") or "your own machine: $0 (no price given)")
        _emit_with_budget(d, budget, within)
        return
    _render_calibration(cal, ep, ep_basis, cost, budget, within)


def _render_calibration(cal, epochs, epochs_basis, cost, budget, within) -> None:
    from rich.table import Table

    from .output import out

    s, c, m, p = cal.settings, cal.counts, cal.measured, cal.prediction
    t = Table(title=f"Local training estimate: {_esc(cal.model)}, calibrated on this machine",
              show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("model", _esc(cal.model_source))
    t.add_row("device", f"{cal.device}, {cal.precision} ({_esc(cal.device_name)})")
    adapter = s.adapter + (f" r={s.lora_r}" if s.lora_r else "")
    t.add_row("plan", f"{s.method.upper()} {adapter}, batch {s.batch_size} x {s.gradient_accumulation_steps}, "
                      f"{epochs} epoch(s) ({_esc(epochs_basis)}), max_seq_len {s.max_seq_len}"
                      f"{', packed' if s.packing else ''}, checkpoint every {s.save_steps} steps"
                      + (", eval data" if s.has_eval else ""))
    t.add_row("data", f"{c.examples:,} examples, {c.rows:,} rows, {c.tokens_per_epoch:,} tokens/epoch "
                      f"({_esc(c.basis)})")
    t.add_row("full run", f"{p.optimizer_steps:,} optimizer steps, {p.tokens:,} tokens, "
                          f"{p.checkpoint_saves} checkpoint save(s)" + (f", {p.evaluations} evaluation(s)" if s.has_eval else ""))
    setup = (f"imports {_dur(m.imports_s)}" + ("" if m.imports_measured else " (already imported)")
             + f", model load {_dur(m.model_load_s)}, trainer build {_dur(m.trainer_build_s)}, "
               f"start {_dur(m.trainer_start_s)}")
    t.add_row("measured", setup)
    w = m.warmup_used
    n_steady = len(m.step_seconds) - w
    steady = (f"{n_steady} step(s): {m.seconds_per_step:.3g} s/step, {m.tokens_per_step:,.0f} tokens/step"
              + (f" ({1 / m.seconds_per_token:,.0f} tokens/s)" if m.seconds_per_token else ""))
    t.add_row("", (f"warm-up {w} step(s) {_dur(sum(m.step_seconds[:w]))}; " if w else "") + steady)
    extra = []
    if m.checkpoint_save_s is not None:
        extra.append(f"checkpoint save {_dur(m.checkpoint_save_s)}")
    if m.eval_s is not None:
        extra.append(f"evaluation {_dur(m.eval_s)}")
    extra.append(f"final save {_dur(m.final_save_s)}")
    t.add_row("", ", ".join(extra))
    parts = [f"setup {_dur(p.setup_s)}", f"warm-up {_dur(p.warmup_s)}", f"steps {_dur(p.steps_s)}",
             f"{p.checkpoint_saves} save(s) {_dur(p.checkpoints_s)}"]
    if s.has_eval:
        parts.append(f"{p.evaluations} evaluation(s) {_dur(p.evaluations_s)}")
    parts.append(f"final save {_dur(p.final_save_s + p.finish_s)}")
    t.add_row("predicted", f"[bold]{_dur(p.total_s)}[/bold] = " + " + ".join(parts))
    t.add_row("", _esc(p.steps_basis))
    if cal.cost is not None:
        t.add_row("cost", f"[bold]{_usd(cost)}[/bold] ({_esc(cal.cost['basis'])})")
    else:
        t.add_row("cost", "$0 on your own machine; give --gpu-price-per-hour USD for a figure")
    if budget is not None:
        verdict = "unknown" if within is None else ("[green]holds[/green]" if within else "[red]exceeded[/red]")
        t.add_row("budget", f"${budget:,.2f}: {verdict}")
    t.add_row("calibration", f"{cal.calibration_steps} real step(s), {_dur(cal.calibration_wall_s)} in all; cached "
                             "for later estimates and `ftc train`")
    for note in cal.notes:
        t.add_row("[yellow]note[/yellow]", _esc(note))
    out.print(t)


def _parse_gpu_prices(values: tuple[str, ...]) -> dict[str, float]:
    from ..errors import UsageError

    res: dict[str, float] = {}
    for v in values:
        ref, sep, usd = v.partition("=")
        try:
            price = float(usd)
        except ValueError:
            price = -1.0
        if not sep or ":" not in ref or price < 0:
            raise UsageError(
                f"--gpu-price {v!r}: expected HOST:GPU=USD_PER_HOUR",
                hint="e.g. --gpu-price own:rtx4090=0.25",
            )
        res[ref.strip().lower()] = price
    return res


@cost.command("compare")
@click.argument("file", type=click.Path(dir_okay=True), required=False)
@click.option("--models", default=None, help="Comma-separated models and GPU offers (default: a mix of hosted and self-hosted).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: the OpenAI cookbook heuristic, for every row).")
@click.option("--method", type=click.Choice(["sft", "dpo"], case_sensitive=False), default=None, help="sft (default) or dpo.")
@click.option("--adapter", type=click.Choice(["lora", "qlora", "full"], case_sensitive=False), default=None,
              help="lora (default), qlora or full.")
@click.option("--queries-per-month", type=click.IntRange(min=0), default=None, help="Inference volume (default 100,000).")
@click.option("--tokens-per-query-in", type=click.IntRange(min=0), default=None, help="Prompt tokens per query (default: the data's mean).")
@click.option("--tokens-per-query-out", type=click.IntRange(min=0), default=None, help="Completion tokens per query (default: the data's mean).")
@click.option("--gpu-price", multiple=True, metavar="HOST:GPU=USD", help="Price a GPU per hour, e.g. own:rtx4090=0.25 (repeatable).")
@click.option("--budget", type=BUDGET, default=None, help="Training budget in USD: each row says whether it holds.")
@click.option("--self-host-model", default=None, metavar="MODEL",
              help="The model the self-hosted rows train and serve: a catalogue open model (llama-3.1-8b), default "
                   "(SmolLM2-135M-Instruct), an HF id or a model path. Default: the spec's local model with --spec, "
                   "else llama-3.1-8b.")
@click.option("--gpu-price-per-hour", type=PRICE, default=None, metavar="USD",
              help="local:MODEL rows: what an hour of this machine costs (default: the spec's local price, else $0).")
@_spec_option
@_common_prices
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also write a PNG chart here.")
def compare(file, models, epochs, method, adapter, queries_per_month, tokens_per_query_in, tokens_per_query_out,
            gpu_price, budget, self_host_model, gpu_price_per_hour, spec_path, prices_file, as_json, plot_path) -> None:
    """Every backend side by side: training, inference per month, break-even, budget.

    Add local:MODEL (e.g. local:default) to --models for this machine's row: its training time
    comes from `ftc cost estimate FILE --model local:MODEL --calibrate` (run once; cached).
    """
    from ..cost import compare_costs
    from .output import emit_json, out

    file, epochs, method, adapter, budget, job = _from_spec(spec_path, file, epochs, method, adapter, budget)
    if self_host_model is None:
        self_host_model = _self_host_model(job)
    cmp = compare_costs(
        file,
        models,
        epochs=epochs,
        method=method,
        adapter=adapter,
        queries_per_month=queries_per_month,
        tokens_per_query_in=tokens_per_query_in,
        tokens_per_query_out=tokens_per_query_out,
        gpu_prices=_parse_gpu_prices(gpu_price),
        budget_usd=budget,
        prices=prices_file,
        self_host_model=self_host_model,
        local_usd_per_hour=gpu_price_per_hour,
        spec=job,
    )
    if plot_path:
        from ..plot import plot_comparison

        plot_comparison(cmp, plot_path)
    if as_json:
        d = cmp.to_dict()
        if plot_path:
            d["plot"] = str(plot_path)
        emit_json(d)
        return
    _render_compare(cmp, out)
    if plot_path:
        from .output import info

        info(f"chart written to {plot_path}")


def _money(v, exact: bool = True) -> str:
    from ..budget import format_usd

    s = format_usd(v)
    return s if exact or v is None else f"~{s}"


def _render_compare(cmp, out) -> None:
    from rich.table import Table

    t = Table(
        title=(
            f"Fine-tuning cost: {cmp.examples:,} examples, {cmp.epochs} epoch{'' if cmp.epochs == 1 else 's'}, "
            f"{cmp.queries_per_month:,} queries/month, self-hosted rows: {_esc(cmp.self_host_model)}"
            + (f", {cmp.self_host['params_b']:g}B params" if cmp.self_host.get("params_b") else "")
        ),
        title_justify="left",
        caption="~ estimated; no ~ = exact token count x published price. --json: each figure's basis.",
        caption_justify="left",
    )
    t.add_column("backend", overflow="fold", ratio=1)
    t.add_column("training", justify="right", no_wrap=True)
    t.add_column("time", justify="right", no_wrap=True)
    t.add_column("per 1K q", justify="right", no_wrap=True)
    t.add_column("per month", justify="right", no_wrap=True)
    t.add_column("break-even\nq/month", justify="right", no_wrap=True)
    if cmp.budget_usd is not None:
        t.add_column(f"<=${cmp.budget_usd:g}", justify="center", no_wrap=True)
    notes: list[str] = []
    for r in cmp.rows:
        dur = "-" if r.duration_hours is None else (
            f"~{r.duration_hours:.1f}h" if r.duration_hours >= 1 else f"~{_dur(r.duration_hours * 3600)}")
        be = r.break_even_queries_per_month
        be_s = "-" if be is None else (be if isinstance(be, str) else ("any volume" if be == 0 else f"{be:,.0f}"))
        label = _esc(r.label) + ("" if r.price.get("stale") is False else " [red](stale price)[/red]")
        cells = [
            label,
            _money(r.training_cost_usd, r.training_exact) + ("*" if r.min_charge_applied else ""),
            dur,
            _money(r.inference_per_1k_usd, r.inference_exact),
            _money(r.inference_monthly_usd, r.inference_exact),
            be_s,
        ]
        if cmp.budget_usd is not None:
            cells.append("[green]yes[/green]" if r.within_budget else "[red]no[/red]")
        t.add_row(*cells)
        extra = [_esc(r.serving)]
        if r.kind == "self-hosted" and r.training_flops is not None:
            extra.append(
                f"{r.training_flops:.2g} FLOPs at {r.utilisation:.0%} utilisation, {r.gpu_hours:.2f} GPU-h billed"
            )
        if r.min_charge_applied:
            extra.append("* minimum charge applied")
        if not r.token_count_exact:
            extra.append("token count approximated")
        notes.append(f"[bold]{_esc(r.label)}[/bold]: " + "; ".join(extra + [f"[yellow]{_esc(c)}[/yellow]" for c in r.caveats]))
    out.print(t)
    for n in notes:
        out.print(f"  {n}", soft_wrap=True, highlight=False)
    by_reason: dict[str, list[str]] = {}
    for skip in getattr(cmp, "not_compared", None) or []:
        by_reason.setdefault(skip["reason"], []).append(skip["backend"])
    for reason, backends in by_reason.items():
        out.print(f"  not compared: {_esc(', '.join(backends))} ({_esc(reason)})", soft_wrap=True, highlight=False)
