"""``ftc data validate FILE --provider BACKEND [--strict]``: any installed backend that checks data."""

from __future__ import annotations

import click

from .output import emit_json

SHOW_LINES = 5


@click.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--provider", "-p", required=True, metavar="BACKEND",
              help="Whose rules to check against: openai, together, local (or any installed backend).")
@click.option("--model", "-m", default=None, help="Base model (OpenAI default gpt-4.1-mini; local: a model folder or HF id in the local cache).")
@click.option("--method", type=click.Choice(["sft", "dpo"], case_sensitive=False), default=None, help="Training method (default: detected from the data).")
@click.option("--max-seq-len", type=click.IntRange(min=1), default=None, help="Token limit per example (local default 2048).")
@click.option("--strict", is_flag=True, help="Count warnings as errors (exit 1 on any warning).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def validate(
    file: str, provider: str, model: str | None, method: str | None, max_seq_len: int | None, strict: bool, as_json: bool
) -> None:
    """Check FILE (JSONL; for Together also pre-tokenized Parquet) against a provider's
    fine-tuning rules.

    Exit 0 when no error was found (warnings allowed, unless --strict), 1 when errors
    were found, 2 on a usage error. Every problem names its line and a stable code
    (see docs/validation.md).
    """
    from ..validation import validate_file
    from .output import progress as progress_bar

    with progress_bar(enabled=not as_json) as bar:
        task = None

        def on_progress(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("validating", total=total)
            bar.update(task, completed=done)

        result = validate_file(
            file,
            provider,
            model=model,
            method=method.lower() if method else None,
            max_seq_len=max_seq_len,
            progress=on_progress,
            strict=strict,
        )
    if as_json:
        emit_json(result.to_dict())
    else:
        _render(result)
    # click.exceptions.Exit: the exit code reaches both main() and click's test runner.
    click.get_current_context().exit(0 if result.ok else 1)


def _render(r) -> None:
    from rich.table import Table

    from .output import esc, out

    d = r.to_dict()
    status = "[bold green]OK[/bold green]" if r.ok else "[bold red]PROBLEMS FOUND[/bold red]"
    if r.strict:
        status += " [dim](--strict: warnings count as errors)[/dim]"
    out.print(f"{status}  " + esc(f"{r.path}  ({r.provider}{', ' + r.model if r.model else ''})"), highlight=False)
    stats = Table.grid(padding=(0, 2))
    stats.add_column(style="dim")
    stats.add_column()
    stats.add_row("examples", f"{r.examples:,}")
    stats.add_row("rows" if r.encoding == "parquet" else "lines", f"{r.lines:,}" + (f" ({r.blank_lines:,} blank)" if r.blank_lines else ""))
    fmts = ", ".join(f"{k} ({v:,})" for k, v in sorted(r.formats.items(), key=lambda kv: -kv[1])) or "none detected"
    stats.add_row("format", esc(fmts))
    stats.add_row("size", _size(r.file_bytes) + ("" if r.encoding == "utf-8" else f", {r.encoding}"))
    t = d["stats"]["tokens"]
    if t and t["counted"]:
        approx = "" if t["exact"] else "≈ "
        line = f"{approx}min {t['min']:,} / mean {t['mean']:,} / max {t['max']:,} per example, {approx}{t['total']:,} in all"
        if t["limit"]:
            line += f"; limit {t['limit']:,} ({esc(t['limit_source'])}), {t['over_limit']:,} over"
            if t["over_limit_tokens"]:
                line += f" by {t['over_limit_tokens']:,} tokens in all"
        stats.add_row("tokens", line)
        stats.add_row("", f"[dim]{'APPROXIMATE: ' if not t['exact'] else ''}{esc(t['basis'])}[/dim]")
    out.print(stats)
    for title, counts, style in (("errors", r.error_counts, "red"), ("warnings", r.warning_counts, "yellow")):
        if not counts:
            continue
        table = Table(title=f"{title}: {sum(counts.values()):,}", title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("code", style=style)
        table.add_column("count", justify="right")
        table.add_column("lines")
        table.add_column("example")
        problems = r.errors if title == "errors" else r.warnings
        first_msg = {}
        for p in problems:
            first_msg.setdefault(p.code, p)
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines = r.findings.first_lines.get(code, [])
            shown = ", ".join("file" if ln == 0 else str(ln) for ln in lines[:SHOW_LINES])
            if n > len(lines[:SHOW_LINES]):
                shown += ", …"
            ex = first_msg.get(code)
            table.add_row(esc(code), f"{n:,}", shown, esc(ex.message) if ex else "")
        out.print(table)
    for note in r.notes:
        out.print(f"[dim]note: {esc(note)}[/dim]", highlight=False)
    if d["errors_not_shown"]:
        out.print(f"[dim]{d['errors_not_shown']:,} more errors not stored; counts above are complete[/dim]")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
