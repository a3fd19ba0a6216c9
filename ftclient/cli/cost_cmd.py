"""``ftc cost``: estimate and compare fine-tuning cost, offline."""

from __future__ import annotations

import click


def _common_prices(f):
    return click.option(
        "--prices",
        "prices_file",
        type=click.Path(dir_okay=False),
        envvar="FTC_PRICES",
        default=None,
        help="A YAML prices file merged over the bundled catalogue (also $FTC_PRICES).",
    )(f)


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
              help="PROVIDER:MODEL, e.g. openai:gpt-4.1-mini, or a GPU offer (modal:h100). With --spec: openai's model.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: the OpenAI cookbook heuristic).")
@click.option("--method", type=click.Choice(["sft", "dpo"], case_sensitive=False), default=None, help="sft (default) or dpo.")
@click.option("--adapter", type=click.Choice(["lora", "qlora", "full"], case_sensitive=False), default=None,
              help="lora (default), qlora or full.")
@_spec_option
@_common_prices
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def estimate(file, model, epochs, method, adapter, spec_path, prices_file, as_json) -> None:
    """Training cost of fine-tuning MODEL on FILE (JSONL of ChatML examples)."""
    from ..cost import estimate_cost
    from ..errors import UsageError
    from .output import emit_json, out

    file, epochs, method, adapter, budget, job = _from_spec(spec_path, file, epochs, method, adapter)
    if model is None and job is not None and job.openai.model:
        model = f"openai:{job.openai.model}"
    if model is None:
        raise UsageError("give --model PROVIDER:MODEL", hint="e.g. --model openai:gpt-4.1-mini")

    est = estimate_cost(file, model, epochs=epochs, method=method, adapter=adapter, prices=prices_file)
    within = None if budget is None else est.cost_usd <= budget
    if as_json:
        d = est.to_dict()
        if budget is not None:
            d["budget_usd"], d["within_budget"] = budget, within
        emit_json(d)
        return
    from rich.table import Table

    t = Table(title=f"Fine-tuning cost: {est.model}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    mark = "" if est.token_count_exact else " [yellow](estimated)[/yellow]"
    t.add_row("examples", f"{est.examples:,}")
    t.add_row("tokens per epoch", f"{est.tokens_per_epoch:,}{mark}")
    t.add_row("epochs", f"{est.epochs} ({est.epochs_basis})")
    t.add_row("billed tokens", f"{est.billed_tokens:,}{mark}")
    cost_mark = "" if est.cost_exact else " [yellow](estimated)[/yellow]"
    t.add_row("cost", f"[bold]${est.cost_usd:,.2f}[/bold]{cost_mark}")
    t.add_row("how", est.cost_basis)
    t.add_row("token count", est.token_count_basis)
    p = est.price
    stale = " [red]STALE[/red]" if p.get("stale") else ""
    t.add_row("price source", f"{p.get('source')} (as of {p.get('as_of')}){stale}")
    for c in est.caveats:
        t.add_row("[yellow]caveat[/yellow]", c)
    if budget is not None:
        t.add_row("budget", f"${budget:,.2f}: " + ("[green]holds[/green]" if within else "[red]exceeded[/red]"))
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
@click.option("--budget", type=click.FloatRange(min=0), default=None, help="Training budget in USD: each row says whether it holds.")
@click.option("--self-host-model", default="llama-3.1-8b", show_default=True, help="Open model for the self-hosted rows.")
@_spec_option
@_common_prices
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also write a PNG chart here.")
def compare(file, models, epochs, method, adapter, queries_per_month, tokens_per_query_in, tokens_per_query_out,
            gpu_price, budget, self_host_model, spec_path, prices_file, as_json, plot_path) -> None:
    """Every backend side by side: training, inference per month, break-even, budget."""
    from ..cost import compare_costs
    from .output import emit_json, out

    file, epochs, method, adapter, budget, _ = _from_spec(spec_path, file, epochs, method, adapter, budget)
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
    if v is None:
        return "-"
    s = f"${v:,.2f}" if v >= 0.995 or v == 0 else f"${v:.4f}"
    return s if exact else f"~{s}"


def _render_compare(cmp, out) -> None:
    from rich.table import Table

    t = Table(
        title=(
            f"Fine-tuning cost: {cmp.examples:,} examples, {cmp.epochs} epochs, "
            f"{cmp.queries_per_month:,} queries/month, self-hosted rows: {cmp.self_host_model}"
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
        dur = "-" if r.duration_hours is None else f"~{r.duration_hours:.1f}h"
        be = r.break_even_queries_per_month
        be_s = "-" if be is None else (be if isinstance(be, str) else ("any volume" if be == 0 else f"{be:,.0f}"))
        label = r.label + ("" if r.price.get("stale") is False else " [red](stale price)[/red]")
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
        extra = [r.serving]
        if r.kind == "self-hosted" and r.training_flops is not None:
            extra.append(
                f"{r.training_flops:.2g} FLOPs at {r.utilisation:.0%} utilisation, {r.gpu_hours:.2f} GPU-h billed"
            )
        if r.min_charge_applied:
            extra.append("* minimum charge applied")
        if not r.token_count_exact:
            extra.append("token count approximated")
        notes.append(f"[bold]{r.label}[/bold]: " + "; ".join(extra + [f"[yellow]{c}[/yellow]" for c in r.caveats]))
    out.print(t)
    for n in notes:
        out.print(f"  {n}", soft_wrap=True, highlight=False)
