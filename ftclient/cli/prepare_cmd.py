"""``ftc data prepare``: raw data -> clean ChatML train/eval JSONL and a report."""

from __future__ import annotations

import click


@click.command("prepare")
@click.argument("input_path", metavar="INPUT")
@click.option("--out-dir", "-o", required=True, help="Directory for train.jsonl, eval.jsonl and report.json.")
@click.option("--input-col", default=None, help="Column (or JSON field) with the user text. Guessed if not given.")
@click.option("--output-col", default=None, help="Column (or JSON field) with the answer / label. Guessed if not given.")
@click.option("--system", default=None, help="System prompt added to records that have none.")
@click.option("--eval-fraction", type=float, default=0.1, show_default=True, help="Share of records for eval.jsonl.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the split and the output order.")
@click.option("--redact", is_flag=True, help="Replace personal data and secrets with placeholders such as [EMAIL].")
@click.option("--near-dup-threshold", type=float, default=0.9, show_default=True,
              help="Drop records whose Jaccard similarity to an earlier one is at least this.")
@click.option("--no-near-dup", is_flag=True, help="Keep near duplicates (exact duplicates are still dropped).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_context
def prepare(ctx: click.Context, input_path: str, out_dir: str, input_col: str | None, output_col: str | None,
            system: str | None, eval_fraction: float, seed: int, redact: bool, near_dup_threshold: float,
            no_near_dup: bool, as_json: bool) -> None:
    """Turn a CSV, TSV, JSON or JSONL file into clean ChatML train/eval JSONL.

    Detects the format (columns, ChatML, prompt/completion, Alpaca, ShareGPT, DPO
    pairs, OpenAI preference), drops empty, duplicate and near-duplicate records,
    reports personal data (and redacts it with --redact), reports label balance, and
    writes a seeded, label-stratified split plus report.json.

    \b
    Example:
      ftc data prepare tickets.csv --input-col text --output-col category \\
          --system "Route the ticket to one intent." --out-dir data/
    """
    from ..errors import UsageError
    from ..data.prepare import prepare as run_prepare
    from .output import emit_json, info, progress

    if no_near_dup and ctx.get_parameter_source("near_dup_threshold") == click.core.ParameterSource.COMMANDLINE:
        raise UsageError("give either --near-dup-threshold or --no-near-dup, not both")

    def log(msg: str) -> None:
        if msg.startswith("warning: "):
            from .output import warn

            warn(msg[len("warning: "):])
        else:
            info(msg)

    with progress() as bar:
        tasks: dict[str, int] = {}

        def on_progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                label = "reading" if phase == "read" else "writing"
                tasks[phase] = bar.add_task(label, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        report = run_prepare(
            input_path, out_dir, input_col=input_col, output_col=output_col, system=system,
            eval_fraction=eval_fraction, seed=seed, redact=redact,
            near_dup_threshold=None if no_near_dup else near_dup_threshold,
            progress=on_progress, log=log,
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        _render(report.to_dict())


def _render(r: dict) -> None:
    from rich.table import Table

    from .output import esc, out

    c = r["counts"]
    t = Table(title="ftc data prepare", show_header=False, title_justify="left")
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("format", esc(r["format"]["description"]))
    t.add_row("records read", str(c["read"]))
    t.add_row("kept", f"{c['kept']}  (train {c['train']}, eval {c['eval']})")
    drops = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in c["dropped"].items() if n)
    t.add_row("dropped", f"{c['dropped_total']}" + (f"  ({drops})" if drops else ""))
    p = r["pii"]
    found = ", ".join(f"{n} {k}" for k, n in p["by_kind"].items() if n)
    t.add_row("PII", (found + ("  (redacted)" if p["redacted"] else "  (not redacted)")) if found else "none found")
    lab = r["labels"]
    if lab:
        t.add_row("labels", f"{lab['count']} labels, {lab['min_examples']}-{lab['max_examples']} examples each "
                            f"(imbalance {lab['imbalance_ratio']}x); split stratified")
    else:
        t.add_row("labels", "none detected; split random")
    t.add_row("seed / eval fraction", f"{r['split']['seed']} / {r['split']['eval_fraction']}")
    o = r["outputs"]
    t.add_row("wrote", esc(f"{o['train']}\n{o['eval']}\n{o['report']}"))
    out.print(t)
    if lab:
        items = list(lab["per_label"].items())
        lt = Table(title="label balance" + (" (largest and smallest 5)" if len(items) > 10 else ""), title_justify="left")
        lt.add_column("label")
        lt.add_column("train", justify="right")
        lt.add_column("eval", justify="right")
        lt.add_column("total", justify="right")
        shown = items if len(items) <= 10 else items[:5] + [("...", None)] + items[-5:]
        for name, v in shown:
            if v is None:
                lt.add_row("...", "", "", "")
            else:
                lt.add_row(esc(name), str(v["train"]), str(v["eval"]), str(v["total"]))
        out.print(lt)
