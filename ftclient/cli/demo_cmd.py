"""``ftc demo``: the whole path on a bundled real sample, offline, on a CPU."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ftc-demo"),
              show_default=True, help="Where the demo writes its files.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--queries-per-month", type=click.IntRange(min=0), default=100_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print everything the demo produced as JSON.")
def demo(out_dir: Path, epochs: int, queries_per_month: int, as_json: bool) -> None:
    """Run the whole path on a bundled sample, offline.

    \b
    On 480 real customer-support messages (BANKING77, six intents, CC BY 4.0):
      1. prepare   CSV -> clean, PII-scanned, stratified ChatML train/eval JSONL
      2. validate  the training file for OpenAI, Together and local training
      3. cost      training and serving cost on every backend, hosted and self-hosted
    """
    import time

    from ..demo import STAGES, run_demo
    from . import output

    titles = {"prepare": "prepare the sample", "validate": "validate for every backend",
              "cost": "compare cost on every backend"}
    with output.progress(enabled=not as_json) as bar:
        task = bar.add_task("demo", total=len(STAGES))
        started: dict[str, float] = {}

        def on_stage(stage: str, state: str) -> None:
            if state == "start":
                started[stage] = time.perf_counter()
                bar.update(task, description=titles[stage])
            else:
                bar.advance(task)
                if not as_json:
                    output.info(f"[green]done[/green] {titles[stage]} "
                                f"({time.perf_counter() - started[stage]:.1f} s)")

        result = run_demo(out_dir, epochs=epochs, queries_per_month=queries_per_month, on_stage=on_stage)

    if as_json:
        output.emit_json(result.to_dict())
        return
    _render(result, output.out)


def _render(result, out) -> None:
    from rich.table import Table

    from .cost_cmd import _render_compare

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
    files = result.to_dict()["files"]
    out.print("\nfiles: " + ", ".join(files.values()), soft_wrap=True, highlight=False)
