"""``ftc demo``: the whole path on a bundled real sample, offline, on a CPU."""

from __future__ import annotations

from pathlib import Path

import click

from .params import PRICE

TITLES = {"prepare": "prepare the sample", "validate": "validate for every backend",
          "cost": "compare cost on every backend", "train": "fine-tune SmolLM2-135M locally (LoRA)",
          "eval": "evaluate base and fine-tuned", "report": "write the comparison report"}


@click.command()
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ftc-demo"),
              show_default=True, help="Where the demo writes its files.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs (default: 1).")
@click.option("--queries-per-month", type=click.IntRange(min=0), default=100_000, show_default=True)
@click.option("--fast", is_flag=True, help="A short smoke run of every stage (a few training steps).")
@click.option("--offline-only", "offline_only", is_flag=True,
              help="Stop after the cost comparison (no training, no evaluation).")
@click.option("--with", "with_", default="", metavar="BACKEND,...",
              help="Also evaluate these hosted backends' example models, e.g. openai,together,fireworks "
                   "(needs their API keys; costs cents).")
@click.option("--price-per-hour", type=PRICE, default=None,
              help="$/h of this machine, for the local models' cost per 1K queries.")
@click.option("--json", "as_json", is_flag=True, help="Print everything the demo produced as JSON.")
def demo(out_dir: Path, epochs: int | None, queries_per_month: int, fast: bool, offline_only: bool, with_: str,
         price_per_hour: float | None, as_json: bool) -> None:
    """Run the whole path on a bundled sample, offline, on a CPU.

    \b
    On 480 real customer-support messages (BANKING77, six intents, CC BY 4.0):
      1. prepare   CSV -> clean, PII-scanned, stratified ChatML train/eval JSONL
      2. validate  the training file for OpenAI, Together and local training
      3. cost      training and serving cost on every backend, hosted and self-hosted
      4. train     LoRA SFT of SmolLM2-135M-Instruct as a local ftc job
      5. eval      base and fine-tuned model on the held-out messages
      6. report    accuracy, cost per 1K queries and latency, with a recommendation
    Run it again in the same --out-dir to reuse (or resume) the training job and evals.
    """
    import time

    from ..demo import STAGES, run_demo
    from . import output

    with_backends = [b.strip() for b in with_.split(",") if b.strip()]
    with output.progress(enabled=not as_json) as bar:
        overall = bar.add_task("demo", total=len(STAGES))
        detail: dict[str, int] = {}
        started: dict[str, float] = {}

        def on_stage(stage: str, state: str) -> None:
            if state == "start":
                started[stage] = time.perf_counter()
                bar.update(overall, description=TITLES[stage])
                return
            bar.advance(overall)
            if stage in detail:
                bar.remove_task(detail.pop(stage))
            if as_json:
                return
            if state == "skipped":
                output.info(f"[yellow]skipped[/yellow] {TITLES[stage]}", markup=True)
            else:
                output.info(f"[green]done[/green] {TITLES[stage]} ({time.perf_counter() - started[stage]:.1f} s)", markup=True)

        def on_progress(stage: str, completed: int, total: int | None, text: str) -> None:
            if stage not in detail:
                detail[stage] = bar.add_task(text, total=total)
            bar.update(detail[stage], completed=completed, total=total, description=f"  {text}")

        result = run_demo(out_dir, epochs=epochs, queries_per_month=queries_per_month, fast=fast,
                          offline_only=offline_only, with_backends=with_backends, price_per_hour=price_per_hour,
                          on_stage=on_stage, on_progress=on_progress)

    if as_json:
        output.emit_json(result.to_dict())
        return
    _render(result, output.out)


def _render(result, out) -> None:
    from rich.table import Table

    from .cost_cmd import _render_compare
    from .output import esc

    p = result.prepare.to_dict()
    c = p["counts"]
    out.print(f"[bold]1. prepare[/bold]  {c['read']} read, {c['kept']} kept "
              f"(train {c['train']}, eval {c['eval']}), {c['dropped_total']} dropped; "
              f"{p['labels']['count'] if p['labels'] else 0} labels; PII found: {p['pii']['total']}")
    t = Table(title="2. validate", title_justify="left")
    for col in ("provider", "ok", "examples", "problems", "tokens"):
        t.add_column(col)
    for provider, v in result.validation.items():
        d = v.to_dict()
        tokens = (d.get("stats") or {}).get("tokens") or {}
        tok = "not counted" if not tokens else f"{'' if tokens['exact'] else '~'}{tokens['total']:,}"
        t.add_row(provider, "[green]yes[/green]" if d["ok"] else "[red]no[/red]", str(d["examples"]),
                  str(len(d["errors"])), tok)
    out.print(t)
    out.print("[bold]3. cost[/bold]")
    _render_compare(result.comparison, out)
    if result.skipped:
        reason = next(iter(result.skipped.values()))
        out.print(f"\n[yellow]4-6 skipped[/yellow]: {esc(reason)}", soft_wrap=True, highlight=False)
    else:
        job = result.job
        loss = f", final loss {job.loss:.3f}" if job.loss is not None else ""
        wall = result.seconds.get("train")
        out.print(f"\n[bold]4. train[/bold]  job {job.id}: {job.step} steps{loss}"
                  + (f" ({wall:.0f} s)" if wall else ""), highlight=False)
        t = Table(title="5. eval (intent accuracy on held-out messages)", title_justify="left")
        for col in ("model", "accuracy", "macro-F1", "latency p50", "examples"):
            t.add_column(col)
        for e in result.evals:
            m = e.get("metrics", {})
            t.add_row(esc(e["model_ref"]), f"{m.get('accuracy', m.get('score', 0.0)):.1%}",
                      f"{m['macro_f1']:.2f}" if "macro_f1" in m else "-",
                      f"{e['latency_s']['p50'] * 1000:.0f} ms", str(e["examples"]))
        out.print(t)
        out.print("[bold]6. report[/bold]")
        md = result.report.to_dict().get("recommendation")
        if isinstance(md, dict):
            text = md.get("summary") or md.get("text")
            if text:
                out.print(esc(text.replace("**", "")), soft_wrap=True, highlight=False)
    files = result.files()
    out.print("\nfiles: " + esc(", ".join(files.values())), soft_wrap=True, highlight=False)
